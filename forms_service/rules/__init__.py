"""The programme's own checks: EDE scoring, CER durations and deadlines, the PAP, the DSP.

Importing this package registers them with the rules engine under the names
the definitions use (``check: cer_duration``…).
"""

from . import cer, dsp, ede, programme  # noqa: F401
