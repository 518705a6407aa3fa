"""Statistics on tables and arrays: column profiles, schema inference, data validation.

Pure computation with numpy and pyarrow, no I/O: services hand it tables and store what it
returns. It sits between the services and the domain, so the domain stays standard-library
only while the heavy arithmetic stays vectorised.
"""
