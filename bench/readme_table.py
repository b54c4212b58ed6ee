#!/usr/bin/env python3
"""Rewrites the README's performance table from bench/results.json (what bench/run wrote),
between the markers <!-- bench-table:begin --> and <!-- bench-table:end -->. bench/run
calls it after a run that wrote bench/RESULTS.md; run it by hand after editing results.

usage: bench/readme_table.py [--results bench/results.json] [--readme README.md]
"""
import argparse
import json
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEGIN, END = "<!-- bench-table:begin -->", "<!-- bench-table:end -->"
TITLES = {"produce": "produce: datagen → protobuf → Kafka",
          "consume": "consume: Kafka → protobuf → Redis, exactly once",
          "route": "route: Kafka → Avro → per-tenant topics, at least once",
          "trades": "trades: Kafka → JSON → PostgreSQL, exactly once",
          "food": "food: Kafka → JSON → SQLite counts, exactly once"}


def ratio(summary, contender):
    p, c = summary.get("pipehost"), summary.get(contender)
    return f"{p['median'] / c['median']:.2f}×" if p and c else "–"


def row(title, p, b, py_ratio, p99):
    vs_b = f"{p['median'] / b['median']:.2f}×" if b else "–"
    cpu = f"{p['cpu'] / b['cpu']:.2f}×" if b else "–"
    b_rss = f"{b['peak_rss']:.0f} MB" if b else "–"
    lat = f"{p99} ms" if p99 is not None else "–"
    return (f"| {title} | {p['median'] / 1000:,.0f}k | {vs_b} | {cpu} | {py_ratio} "
            f"| {p['peak_rss']:.0f} MB | {b_rss} | {lat} |")


def table(results):
    lines = ["| pipeline | pipehost rec/s | vs (a) C++ | CPU per record vs (a) | vs (b) per-message Python "
             "| pipehost peak RSS | (a) peak RSS | pipehost p99 at half load |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for key, title in TITLES.items():
        s = results["summary"].get(key)
        if not s or not s.get("pipehost"):
            continue
        lat = ((results.get("latency") or {}).get(key) or {}).get("pipehost") or {}
        p99 = (lat.get("latency") or {}).get("p99")
        lines.append(row(title, s["pipehost"], s.get("baseline"), ratio(s, "py-per-message"), p99))
        if s.get("pipehost-2tasks"):
            lines.append(row(title + ", `tasks = 2`", s["pipehost-2tasks"], s.get("baseline"),
                             ratio({**s, "pipehost": s["pipehost-2tasks"]}, "py-per-message"), None))
        if s.get("pipehost-projected"):
            lines.append(row(title + ", decoding only the summed fields", s["pipehost-projected"],
                             s.get("baseline"), ratio({**s, "pipehost": s["pipehost-projected"]}, "py-per-message"),
                             None))
    return lines + tools(results)


# Tools a team would pick instead of pipehost: pipeline -> (contender key, name).
TOOLS = {"consume": ("benthos", "Benthos"), "trades": ("connect", "Kafka Connect")}


def tools(results):
    """One line under the table: pipehost against the other tools that ran."""
    out = []
    for key, (c, name) in TOOLS.items():
        s = results["summary"].get(key) or {}
        p, t = s.get("pipehost"), s.get(c)
        if p and t:
            out.append(f"on {key}, pipehost runs at {p['median'] / t['median']:.2f}× {name}'s records/s, "
                       f"using {p['cpu'] / t['cpu']:.3f}× its CPU per record and a peak RSS of "
                       f"{p['peak_rss']:.0f} MB against its {t['peak_rss']:.0f} MB")
    return ["", "Against other tools: " + "; ".join(out) + "."] if out else []


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default=os.path.join(ROOT, "bench", "results.json"))
    ap.add_argument("--readme", default=os.path.join(ROOT, "README.md"))
    o = ap.parse_args()
    results = json.load(open(o.results))
    text = open(o.readme).read()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{o.readme}: no {BEGIN} ... {END} markers to write the table between")
    block = "\n".join([BEGIN, *table(results), END])
    text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    with open(o.readme, "w") as f:
        f.write(text)
    print(f"readme_table: wrote the performance table of {o.readme}")


if __name__ == "__main__":
    main()
