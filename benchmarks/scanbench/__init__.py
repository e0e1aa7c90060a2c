"""A seeded test bench of realistic scans of the programme's forms, with their truth.

``python -m benchmarks.scanbench.generate --out DIR --pages N --seed S [--forms ...]``
renders forms through the service's own pipeline, ticks and signs them by hand
(:mod:`.marks`), prints, photocopies and scans them (:mod:`.damage`), and writes image
PDFs, multi-page TIFFs, JPEGs and PNGs, each with a ``<file>.truth.json`` beside it.
OpenCV and NumPy only. See ``docs/scan-testbench.md``.
"""
