"""kiemke: IT inventory and compliance monitor for government organisations."""

__version__ = "0.1.0"
