"""An importable package of SDK functions: test_sdk.py checks they are shipped as source."""
