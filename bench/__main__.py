"""`python -m bench`: every benchmark, one table (bench/run_all.py)."""
import sys

from .run_all import main

sys.exit(main())
