"""What every report shares: matplotlib set up for files (``plotting``) and markdown tables (``markdown``)."""
