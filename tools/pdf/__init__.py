"""The whole guide as one PDF (``make pdf``): build_pdf.py runs the steps, print.css."""
