"""The PDF report: a cover with the tenant and period, charts (languages, tags, monthly
trend) and tables. reportlab with its own graphics; only the standard PDF fonts."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from reportlab.graphics.charts.barcharts import HorizontalBarChart, VerticalBarChart
from reportlab.graphics.charts.linecharts import HorizontalLineChart
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import cm
from reportlab.platypus import (
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from pocdojo.reports.summary import Count, Summary

_ACCENT = colors.HexColor("#2f5d8a")
_WIDTH = A4[0] - 4 * cm


def _table(rows: list[list[Any]], widths: list[float] | None = None) -> Table:
    table = Table(rows, colWidths=widths, repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, 0), _ACCENT),
                ("TEXTCOLOR", (0, 0), (-1, 0), colors.white),
                ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
                ("FONTSIZE", (0, 0), (-1, -1), 9),
                ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#eef2f6")]),
                ("GRID", (0, 0), (-1, -1), 0.25, colors.HexColor("#b0b8c0")),
                ("ALIGN", (1, 1), (-1, -1), "RIGHT"),
            ]
        )
    )
    return table


def _empty(drawing: Drawing, text: str) -> Drawing:
    drawing.add(String(drawing.width / 2, drawing.height / 2, text, textAnchor="middle"))
    return drawing


def _bars(counts: list[Count], title: str, limit: int = 12) -> Drawing:
    data = counts[:limit]
    height = 40 + 16 * max(len(data), 1)
    drawing = Drawing(_WIDTH, height)
    drawing.add(String(0, height - 12, title, fontName="Helvetica-Bold", fontSize=11))
    if not data:
        return _empty(drawing, "no data in this period")
    chart = HorizontalBarChart()
    chart.x, chart.y = 110, 10
    chart.width, chart.height = _WIDTH - 140, height - 35
    chart.data = [[c.count for c in reversed(data)]]
    chart.categoryAxis.categoryNames = [c.key[:24] for c in reversed(data)]
    chart.categoryAxis.labels.fontSize = 8
    chart.valueAxis.valueMin = 0
    chart.valueAxis.labels.fontSize = 8
    chart.bars[0].fillColor = _ACCENT
    drawing.add(chart)
    return drawing


def _trend(summary: Summary) -> Drawing:
    height = 200
    drawing = Drawing(_WIDTH, height)
    drawing.add(
        String(0, height - 12, "PoCs created per month", fontName="Helvetica-Bold", fontSize=11)
    )
    months = summary.per_month
    chart: HorizontalLineChart | VerticalBarChart
    chart = HorizontalLineChart() if len(months) > 1 else VerticalBarChart()
    chart.x, chart.y = 40, 30
    chart.width, chart.height = _WIDTH - 60, height - 60
    chart.data = [[m.created for m in months], [m.archived for m in months]]
    every = max(1, len(months) // 12)
    chart.categoryAxis.categoryNames = [
        m.month.strftime("%Y-%m") if i % every == 0 else "" for i, m in enumerate(months)
    ]
    chart.categoryAxis.labels.fontSize = 7
    chart.categoryAxis.labels.angle = 45
    chart.categoryAxis.labels.boxAnchor = "ne"
    chart.valueAxis.valueMin = 0
    chart.valueAxis.labels.fontSize = 8
    if isinstance(chart, HorizontalLineChart):
        chart.lines[0].strokeColor = _ACCENT
        chart.lines[0].strokeWidth = 2
        chart.lines[1].strokeColor = colors.HexColor("#c0504d")
    else:
        chart.bars[0].fillColor = _ACCENT
        chart.bars[1].fillColor = colors.HexColor("#c0504d")
    drawing.add(chart)
    drawing.add(String(_WIDTH - 150, height - 12, "created", fillColor=_ACCENT, fontSize=9))
    drawing.add(
        String(
            _WIDTH - 90, height - 12, "archived", fillColor=colors.HexColor("#c0504d"), fontSize=9
        )
    )
    return drawing


def write_pdf(path: Path, summary: Summary, *, tenant_name: str, subject: str) -> None:
    """A few pages: cover, charts, tables. ``subject`` says whose figures these are."""
    styles = getSampleStyleSheet()
    period = summary.period.to_json()
    doc = SimpleDocTemplate(
        str(path),
        pagesize=A4,
        title=f"PoC Dojo report: {tenant_name}",
        author="PoC Dojo",
        leftMargin=2 * cm,
        rightMargin=2 * cm,
        topMargin=2 * cm,
        bottomMargin=2 * cm,
    )
    story: list[Any] = [
        Spacer(1, 5 * cm),
        Paragraph("PoC Dojo report", styles["Title"]),
        Paragraph(escape(tenant_name), styles["Heading1"]),
        Paragraph(f"Period: {period['from']} to {period['to']}", styles["Heading2"]),
        Paragraph(escape(subject), styles["Normal"]),
        Spacer(1, 1 * cm),
        _table(
            [
                ["Figure", "Value"],
                ["PoCs created", f"{summary.created:,}"],
                ["PoCs archived", f"{summary.archived:,}"],
                ["Languages used", f"{len(summary.by_language):,}"],
                ["Dojos held", f"{summary.dojos_held:,}"],
                ["Participant-minutes", f"{summary.participant_seconds / 60:,.1f}"],
                ["Chat messages", f"{summary.chat_messages:,}"],
            ],
            [8 * cm, 5 * cm],
        ),
        Spacer(1, 1 * cm),
        Paragraph(f"Generated {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC", styles["Italic"]),
        PageBreak(),
        _trend(summary),
        Spacer(1, 0.5 * cm),
        _bars(summary.by_language, "Languages (PoCs per language)"),
        PageBreak(),
        _bars(summary.by_tag, "Top tags"),
        Spacer(1, 0.5 * cm),
        Paragraph("PoCs per month", styles["Heading2"]),
        _table(
            [["Month", "Created", "Archived", "Dojos"]]
            + [
                [m.month.strftime("%Y-%m"), m.created, m.archived, m.dojos]
                for m in summary.per_month
            ]
        ),
        PageBreak(),
        Paragraph("Top contributors", styles["Heading2"]),
        _table(
            [["Contributor", "PoCs"]]
            + [[c.display_name[:60], c.pocs] for c in summary.top_contributors]
        ),
        Spacer(1, 0.5 * cm),
        Paragraph("Status of the period's PoCs", styles["Heading2"]),
        _table([["Status", "PoCs"]] + [[k, v] for k, v in summary.by_status.items()]),
        Spacer(1, 0.5 * cm),
        Paragraph("Most active dojos", styles["Heading2"]),
        _table(
            [["Dojo", "Participant-minutes", "Chat messages"]]
            + [
                [d.title[:60], f"{d.participant_minutes:,.1f}", d.chat_messages]
                for d in summary.most_active_dojos
            ]
        ),
    ]
    doc.build(story)
