"""The ``loopml`` command: parse flags, build settings, call a service, render the result."""
