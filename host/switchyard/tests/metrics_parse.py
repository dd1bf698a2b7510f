"""Scrapes a running switch's /api/metrics over HTTPS and parses it with an
independent parser: PyPI prometheus_client's OpenMetrics
text_string_to_metric_families (strict: the # EOF line, counter and
histogram rules). Checks what holds for any scrape (histogram buckets
cumulative, _count equal to the +Inf bucket, no label that looks like card
data, a STAN or a terminal) and prints one JSON document for the Rust test:

    {"content_type": "...",
     "families": {NAME: {"type": T, "samples": [[SAMPLE, {LABELS}, VALUE], ...]}},
     "problems": ["...", ...]}

Usage: metrics_parse.py URL TOKEN_FILE CA_FILE   (URL: https://host:port/api/metrics)
       metrics_parse.py --file PATH              (parse a saved text)
"""

import json
import math
import re
import ssl
import sys
import urllib.request

from prometheus_client.openmetrics.parser import text_string_to_metric_families

# Label names that must never appear, and label values that look like a PAN
# (13-19 digits), a STAN (6 digits) or any other long digit run.
FORBIDDEN_LABELS = {"pan", "stan", "terminal", "merchant", "card", "track", "cvv", "pin"}
DIGITS = re.compile(r"^\d{6,}$")
PAN_INSIDE = re.compile(r"\d{13,19}")


def scrape(url, token_file, ca_file):
    with open(token_file, encoding="utf-8") as f:
        token = f.read().strip()
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.check_hostname = False
    req = urllib.request.Request(url, headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
        return resp.headers.get("Content-Type", ""), resp.read().decode("utf-8")


def check_histogram(family, problems):
    """Per label set (le aside): buckets rise with le, end at +Inf, and
    _count equals the +Inf bucket."""
    series = {}
    for s in family.samples:
        key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
        entry = series.setdefault(key, {"buckets": [], "count": None})
        if s.name.endswith("_bucket"):
            entry["buckets"].append((float(s.labels["le"]), s.value))
        elif s.name.endswith("_count"):
            entry["count"] = s.value
    for key, entry in series.items():
        buckets = sorted(entry["buckets"])
        where = "%s%s" % (family.name, dict(key))
        if not buckets or not math.isinf(buckets[-1][0]):
            problems.append("%s: no +Inf bucket" % where)
            continue
        counts = [c for _, c in buckets]
        if any(b < a for a, b in zip(counts, counts[1:])):
            problems.append("%s: buckets not cumulative: %s" % (where, counts))
        if entry["count"] != counts[-1]:
            problems.append("%s: _count %s != +Inf bucket %s" % (where, entry["count"], counts[-1]))


def check_labels(family, problems):
    for s in family.samples:
        for k, v in s.labels.items():
            if k.lower() in FORBIDDEN_LABELS:
                problems.append("%s: forbidden label %s" % (s.name, k))
            if k != "le" and (DIGITS.match(v) or PAN_INSIDE.search(v)):
                problems.append("%s: label %s looks like card data or a STAN" % (s.name, k))


def main():
    if sys.argv[1] == "--file":
        with open(sys.argv[2], encoding="utf-8") as f:
            content_type, text = "", f.read()
    else:
        content_type, text = scrape(*sys.argv[1:4])
    problems = []
    families = {}
    for family in text_string_to_metric_families(text):
        if family.type == "histogram":
            check_histogram(family, problems)
        check_labels(family, problems)
        families[family.name] = {
            "type": family.type,
            "samples": [[s.name, s.labels, s.value] for s in family.samples],
        }
    json.dump({"content_type": content_type, "families": families, "problems": problems}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
