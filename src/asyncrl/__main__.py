"""`python -m asyncrl`: the command line. Importing this module (as the API reference's
inspection does) runs nothing."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
