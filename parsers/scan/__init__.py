"""Reading scanned paper forms, in small stages that each take and return plain values.

1. :mod:`parsers.scan.identify` finds the page's QR code(s) (form, template version,
   page, document id) and the page's rotation in the image;
2. :mod:`parsers.scan.align` finds the registration marks and estimates the 3×3 matrix
   that maps PDF points (top-left origin, see :mod:`forms_service.render.geometry`) to
   image pixels, with a feature-matching fallback for pages whose marks are lost.

Inputs are greyscale ``numpy.uint8`` arrays (one page); later stages (reading boxes)
use :func:`parsers.scan.align.to_pixels` to find template boxes on the image.
"""
