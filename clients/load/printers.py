"""Printers: a report as ghz prints it (printer/printer.go, template.go), and as one HTML page.

`summary` is ghz's text layout to the character (tabs, tabwriter padding, the ∎ bars), with our
additions in a last section; `csv` is ghz's; `json` and `pretty` are gojson's; `html` needs no
network (ghz's page loads d3 and britecharts from CDNs): the histogram is inline SVG.
"""

from __future__ import annotations

import html
import time
from typing import Any

from forestgate.clients.load.gojson import encode, report_json
from forestgate.clients.load.report import Report
from forestgate.clients.load.results import GO_STATUS

BAR = "∎"


def render(report: Report, format: str) -> str:
    if format == "summary":
        return summary(report)
    if format == "csv":
        return csv(report)
    if format in ("json", "pretty"):
        return report_json(report, pretty=format == "pretty")
    if format == "html":
        return page(report)
    raise ValueError(f"unknown format: {format}")


def nano_unit(ns: int) -> str:
    """ghz's formatNanoUnit."""
    if ns < 10_000:
        return f"{ns} ns"
    ms = ns / 1_000_000.0
    if ms < 1000:
        return f"{ms:4.2f} ms"
    return f"{ms / 1000.0:4.2f} s"


def histogram_lines(buckets: list[tuple[float, int, float]] | None) -> str:
    if not buckets:
        return ""
    max_mark = max(0.0, *(m for m, _, _ in buckets))
    max_count = max(0, *(c for _, c, _ in buckets))
    mark_width = len(f"{max_mark * 1000:.3f}")
    count_width = len(str(max_count))
    lines = []
    for mark, count, _ in buckets:
        bar = (count * 40 + max_count // 2) // max_count if max_count > 0 else 0
        text = f"{mark * 1000:.3f}"
        lines.append(
            f"  {text}{' ' * (mark_width - len(text))} [{count}]"
            f"{' ' * (count_width - len(str(count)))} |{BAR * bar}\n"
        )
    return "".join(lines)


def tabwriter(rows: list[tuple[str, str]], padding: int = 3) -> str:
    """text/tabwriter (minwidth 0, padding 3) over rows of two tab-terminated cells."""
    if not rows:
        return ""
    widths = [max(len(row[i]) for row in rows) + padding for i in range(2)]
    return "".join(f"{a.ljust(widths[0])}{b.ljust(widths[1])}\n" for a, b in rows)


def summary(report: Report) -> str:
    out = ["\nSummary:\n"]
    if report.name:
        out.append(f"  Name:\t\t{report.name}\n")
    out.append(
        f"  Count:\t{report.count}\n"
        f"  Total:\t{nano_unit(report.total_ns)}\n"
        f"  Slowest:\t{nano_unit(report.slowest_ns)}\n"
        f"  Fastest:\t{nano_unit(report.fastest_ns)}\n"
        f"  Average:\t{nano_unit(report.average_ns)}\n"
        f"  Requests/sec:\t{report.rps:4.2f}\n"
        "\nResponse time histogram:\n"
        f"{histogram_lines(report.histogram)}"
        "\nLatency distribution:"
    )
    for percentage, ns in report.latency_distribution or []:
        out.append(f"\n  {percentage} % in {nano_unit(ns)} ")
    out.append("\n\n")
    if report.status_distribution:
        rows = [(f"  [{s}]", f"{n} responses") for s, n in report.status_distribution.items()]
        out.append("Status code distribution:\n" + tabwriter(rows))
    out.append("\n")
    if report.error_distribution:
        rows = [(f"  [{n}]", text) for text, n in report.error_distribution.items()]
        out.append("Error distribution:\n" + tabwriter(rows))
    out.append("\n")
    out.append(additions_text(report.forestgate, report.total_ns))
    return "".join(out)


def additions_text(extra: dict[str, Any], total_ns: int) -> str:
    lines = ["ForestGate:\n", f"  99.9 % in {nano_unit(int(extra['p99.9']))}\n"]
    if total_ns > 0 and "cpu" in extra:
        share = extra["cpu"] / total_ns
        lines.append(f"  Load CPU:\t{nano_unit(int(extra['cpu']))} ({share:.0%} of one core)\n")
    if extra.get("openLoop"):
        lines.append(f"  Intended rate:\t{extra['intendedRps']:4.2f} rps\n")
        lines.append(f"  Actual rate:\t{extra['actualRps']:4.2f} rps\n")
        lines.append("  Latency from:\tscheduled send time (open loop)\n")
        if "sendLag" in extra:
            lag = extra["sendLag"]
            lines.append(
                f"  Send lag:\tp50 {nano_unit(lag['p50'])}, p99 {nano_unit(lag['p99'])}, "
                f"max {nano_unit(lag['max'])}\n"
            )
    if extra.get("procs", 1) > 1:
        lines.append(f"  Processes:\t{extra['procs']}\n")
    return "".join(lines)


def csv(report: Report) -> str:
    out = ["\nduration (ms),status,error"]
    details = report.details
    if details is not None:
        texts = details.error_texts
        for i in range(len(details)):
            ms = details.latency_ns[i] / 1e6
            status = GO_STATUS[int(details.status[i])]
            out.append(f"\n{ms:4.2f},{status},{texts[int(details.error[i])]}")
    out.append("\n")
    return "".join(out)


def _svg_histogram(buckets: list[tuple[float, int, float]]) -> str:
    width, height, left, bottom = 720, 260, 60, 40
    top_count = max(c for _, c, _ in buckets) or 1
    bar_w = (width - left - 10) / len(buckets)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="latency histogram">'
    ]
    for i, (mark, count, freq) in enumerate(buckets):
        h = (height - bottom - 20) * count / top_count
        x, y = left + i * bar_w, height - bottom - h
        parts.append(
            f'<rect x="{x + 2:.1f}" y="{y:.1f}" width="{bar_w - 4:.1f}" height="{h:.1f}" '
            f'fill="#3b7dd8"><title>{mark * 1000:.3f} ms: {count} ({freq * 100:.2f}%)'
            "</title></rect>"
            f'<text x="{x + bar_w / 2:.1f}" y="{y - 4:.1f}" font-size="11" '
            f'text-anchor="middle">{count}</text>'
            f'<text x="{x + bar_w / 2:.1f}" y="{height - bottom + 16}" font-size="10" '
            f'text-anchor="middle">{mark * 1000:.3f}</text>'
        )
    parts.append(
        f'<text x="{width / 2}" y="{height - 4}" font-size="12" text-anchor="middle">'
        "latency (ms), bucket upper mark</text></svg>"
    )
    return "".join(parts)


def _table(rows: list[tuple[str, str]], head: tuple[str, str]) -> str:
    body = "".join(f"<tr><td>{html.escape(a)}</td><td>{html.escape(b)}</td></tr>" for a, b in rows)
    return f"<table><tr><th>{head[0]}</th><th>{head[1]}</th></tr>{body}</table>"


def page(report: Report) -> str:
    """One self-contained HTML page: summary, histogram (inline SVG), percentiles, statuses."""
    title = "forestgate load" + (f" - {report.name}" if report.name else "")
    date = time.strftime("%a %b %d %Y @ %H:%M:%S", time.localtime(report.date_ns / 1e9))
    summary_rows = [
        ("Count", str(report.count)), ("Total", nano_unit(report.total_ns)),
        ("Slowest", nano_unit(report.slowest_ns)), ("Fastest", nano_unit(report.fastest_ns)),
        ("Average", nano_unit(report.average_ns)), ("Requests/sec", f"{report.rps:4.2f}"),
        ("End reason", report.end_reason),
        ("99.9 %", nano_unit(int(report.forestgate["p99.9"]))),
    ]  # fmt: skip
    if report.forestgate.get("openLoop"):
        summary_rows += [
            ("Intended rate (rps)", f"{report.forestgate['intendedRps']:.2f}"),
            ("Actual rate (rps)", f"{report.forestgate['actualRps']:.2f}"),
        ]
    percentiles = [(f"{p} %", nano_unit(ns)) for p, ns in report.latency_distribution or []]
    statuses = [(s, str(n)) for s, n in report.status_distribution.items()]
    errors = [(str(n), text) for text, n in report.error_distribution.items()]
    sections = [
        f"<h1>{html.escape(title)}</h1><p>{html.escape(date)}</p>",
        "<h2 id='summary'>Summary</h2>" + _table(summary_rows, ("", "")),
        "<h2 id='histogram'>Histogram</h2>"
        + (_svg_histogram(report.histogram) if report.histogram else "<p>No OK calls.</p>"),
        "<h2 id='latency'>Latency distribution</h2>"
        + _table(percentiles, ("Percentile", "Latency")),
        "<h2 id='status'>Status distribution</h2>" + _table(statuses, ("Status", "Count")),
    ]
    if errors:
        sections.append("<h2 id='errors'>Errors</h2>" + _table(errors, ("Count", "Error")))
    sections.append(
        "<h2 id='options'>Options</h2><pre>" + html.escape(encode(report.options, "  ")) + "</pre>"
    )
    style = (
        "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:60em;color:#222}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .8em;"
        "text-align:left}pre{background:#f5f5f5;padding:1em;overflow:auto}"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{style}</style></head><body>"
        + "".join(sections)
        + "</body></html>\n"
    )
