"""`python -m training`: the command line (training/cli.py)."""

from training.cli import main

if __name__ == "__main__":
    main()
