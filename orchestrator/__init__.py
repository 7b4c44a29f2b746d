"""clamfleet: scan a fleet of cPanel accounts with ClamScanner and merge the results."""

__version__ = "0.1.0"
