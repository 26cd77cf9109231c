"""pytest set-up shared by unit tests and nbval: headless progress bars, small thread count."""
import os

os.environ.setdefault("SEQLAB_HEADLESS", "1")
