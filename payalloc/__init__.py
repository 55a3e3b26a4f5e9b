"""payalloc: allocate client (self-pay) payments to the charges they pay for."""

__version__ = "0.1.0"
