"""The operations page's style sheet (inline: the page is one self-contained document)."""

from __future__ import annotations

__all__ = ["CSS"]

CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:16px 24px;color:#1d2330;
background:#f6f7f9}
header{display:flex;flex-wrap:wrap;align-items:baseline;gap:12px}
header p{flex-basis:100%;margin:0}
h1{font-size:20px;margin:0}
h2{font-size:16px;margin:0 0 8px}
h3{font-size:14px;margin:12px 0 6px}
.badge{font-size:12px;padding:2px 8px;border-radius:10px;background:#e3e7ee}
.badge.warn{background:#ffe8b3}
.muted{color:#6b7280}.small{font-size:12px}
.notice{background:#e7f4ea;border:1px solid #b7dfc0;padding:6px 10px;border-radius:4px}
.notice.fail{background:#fde8e8;border-color:#f5b5b5}
.charts{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}
.chart{margin:0;background:#fff;border:1px solid #e1e4ea;border-radius:6px;padding:6px 8px}
.chart figcaption{font-size:12px;color:#4b5563}
.chart .now{float:right;margin-left:12px;color:#1d2330}
.chart .line{fill:none;stroke:#2f6fdf;stroke-width:1.5}.chart .dot{fill:#2f6fdf}
.chart .axis{stroke:#d5d9e0}.chart .scale{font-size:9px;fill:#9aa1ad}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(540px,1fr));gap:14px}
#outbox{grid-column:1/-1}
.panel{background:#fff;border:1px solid #e1e4ea;border-radius:6px;padding:12px 14px;
overflow-x:auto}
table{border-collapse:collapse}
th,td{padding:3px 7px;text-align:left;border-bottom:1px solid #eef0f3;vertical-align:top}
.kv th{font-weight:normal;color:#4b5563}
.list th{font-weight:600;font-size:12px}
.num{text-align:right;font-variant-numeric:tabular-nums}
tr.total{background:#f3f5f8}
.warn{color:#a15c00;font-weight:600}.fail{color:#c0262d;font-weight:600}.ok{}
pre{margin:0;white-space:pre-wrap;word-break:break-word;font-size:12px}
pre.error{max-height:6em;overflow:auto;color:#8a1c1c;max-width:640px}
pre.query{background:#f3f5f8;padding:6px;border-radius:4px;max-height:8em;overflow:auto}
.nowrap{white-space:nowrap}
.mono{font-family:ui-monospace,monospace;font-size:12px}
form.action{display:inline;margin:0}
button{font-size:12px;padding:2px 10px;cursor:pointer}
"""
