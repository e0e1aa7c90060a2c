"""The programme's own checks: EDE scoring, CER durations and deadlines, the PAP.

Importing this package registers them with the rules engine under the names
the definitions use (``check: cer_duration``…).
"""

from . import cer, ede, programme  # noqa: F401
