"""Running a grid as jobs: on Slurm through submitit (job arrays), or as processes on this machine.

    resources.py  what a job asks for: per-task defaults, a YAML profile, flags
    plan.py       the grid's cells (minus stored and still-submitted ones) and their arrays
    cluster.py    Slurm's answers: MaxArraySize, partitions, squeue/scontrol/sacct
    submit.py     submitit executors, the sbatch scripts, the local runner's concurrency cap
    job.py        what runs on the node: one cell, DDP from submitit's environment, requeue
    ledger.py     what was submitted, and each job's last word, beside the results
    status.py     where each submitted cell stands
    grid.py       bench run --launcher: check, plan, dry-run or submit, wait
"""
