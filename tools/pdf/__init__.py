"""The whole guide as one PDF (``make pdf``): build_pdf.py and print.css."""
