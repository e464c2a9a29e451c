"""Code that runs inside worker processes. Kept light: it decides cold-start time and RSS."""
