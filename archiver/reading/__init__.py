"""Reading the archive: report, export, status, attribution, the HTML page."""
