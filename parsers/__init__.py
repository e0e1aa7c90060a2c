"""Reading completed forms back: AcroForm PDFs, digital PDFs and scans, into records."""
