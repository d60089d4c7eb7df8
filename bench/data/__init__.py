"""Dataset readers for the standard on-disk layouts, and the eval image pipeline."""
