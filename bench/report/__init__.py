"""Paper-style report tables from the results store: the table model (`model`), the tables the
tasks declare (`catalog`), intervals over images (`intervals`) and one module per output format
(`markdown`, `latex`, `tidy` for CSV and JSON, `html` with its template)."""
