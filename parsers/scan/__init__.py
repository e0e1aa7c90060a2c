"""Reading scanned paper forms, in small stages that each take and return plain values.

1. :mod:`~parsers.scan.ingest`: page images from a file (bounded: pages, pixels);
2. :mod:`~parsers.scan.locate`: one page identified — its QR codes
   (:mod:`~parsers.scan.identify`), else its footer or title (:mod:`~parsers.scan.ocr`) or
   its likeness to a blank page (:mod:`~parsers.scan.references`) — and aligned by its
   registration marks (:mod:`~parsers.scan.align`: the 3×3 matrix from PDF points, top-left
   origin, see :mod:`forms_service.render.geometry`, to image pixels);
3. :mod:`~parsers.scan.batch`: pages grouped by document across the files of an upload;
4. :mod:`~parsers.scan.pipeline`: one document's boxes and zones measured
   (:mod:`~parsers.scan.measure`) and decided (:mod:`~parsers.scan.decide`, which holds
   every threshold), crops for review (:mod:`~parsers.scan.crops`), reconciliation, record.

Inputs are greyscale ``numpy.uint8`` arrays (one page).
"""
