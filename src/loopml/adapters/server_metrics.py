"""Reading a running ``loopml serve``'s request counters from its ``/metrics`` page.

The prediction log holds answered requests only, so the error rate of a deployment comes
from the server itself: ``loopml_requests_total`` (answers, per route; shadow copies are
not requests and are left out) and ``loopml_request_errors_total`` (answers with an error
status, 4xx and 5xx). Counters start at zero when the server starts; the agent turns two
readings into the error rate of the interval between them. A server that is not running
is not an error: :meth:`ServerMetricsReader.counts` returns None and nothing is judged.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request

from loopml.ports.monitoring import RequestCounts

_SAMPLE = re.compile(r"^(loopml_requests_total|loopml_request_errors_total)\{([^}]*)\}\s+(\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


class ServerMetricsReader:
    def __init__(self, url: str, timeout_s: float = 2.0) -> None:
        self.url = url
        self.timeout_s = timeout_s

    def counts(self) -> dict[str, RequestCounts] | None:
        """Answers and errors so far per deployment, or None if no server answers."""
        try:
            with urllib.request.urlopen(self.url, timeout=self.timeout_s) as response:
                text = response.read().decode("utf-8", "replace")
        except (urllib.error.URLError, OSError, ValueError):
            return None
        return parse_counts(text)


def parse_counts(text: str) -> dict[str, RequestCounts]:
    answered: dict[str, float] = {}
    errors: dict[str, float] = {}
    for line in text.splitlines():
        found = _SAMPLE.match(line.strip())
        if found is None:
            continue
        name, labels_text, value_text = found.groups()
        labels = dict(_LABEL.findall(labels_text))
        deployment = labels.get("deployment")
        if deployment is None or labels.get("route") == "shadow":
            continue
        try:
            value = float(value_text)
        except ValueError:
            continue
        into = answered if name == "loopml_requests_total" else errors
        into[deployment] = into.get(deployment, 0.0) + value
    return {
        d: RequestCounts(answered.get(d, 0.0), errors.get(d, 0.0))
        for d in answered.keys() | errors.keys()
    }
