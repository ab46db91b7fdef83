"""Grafana dashboards built with grafana-foundation-sdk: the economists' estimates dashboard
and the operations dashboard.

Shared defaults (data source, time zone, refresh, tags, uids, units) live in
:func:`_dashboard` and :func:`_panel` only. :func:`panel_queries` lists the PromQL of every
panel target, raw or with template variables resolved to their defaults, for tests that
run them against a live Prometheus.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from grafana_foundation_sdk.builders import bargauge, stat, table, timeseries, geomap
from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_m
from grafana_foundation_sdk.models import dashboard as dash_m
from grafana_foundation_sdk.models import geomap as geomap_m
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from estimators.reference import CATEGORIES, DESTINATION_REGIONS

from .config import PERIODS, Config
from .rules import Names, estimate

DOMAINS = ("total", "category", "border_post", "destination_region")
TAGS = ["suitcase"]
USD = "currencyUSD"
#: Shares (0.1 reads 10%).
SHARE = "percentunit"
#: Informal dollars per formal dollar: a plain ratio (3.38, not 338%).
PER_DOLLAR = "none"


@dataclass(frozen=True)
class Q:
    """One panel target: PromQL, legend, and whether it is an instant table query."""

    expr: str
    legend: str = ""
    instant: bool = False


def _ds(config: Config) -> dash_m.DataSourceRef:
    return dash_m.DataSourceRef(type_val="prometheus", uid="${datasource}")


def _targets(config: Config, queries: list[Q]) -> list[prom.Dataquery]:
    out = []
    for i, q in enumerate(queries):
        t = prom.Dataquery().expr(" ".join(q.expr.split())).ref_id(chr(ord("A") + i))
        t = t.datasource(_ds(config))
        if q.legend:
            t = t.legend_format(q.legend)
        if q.instant:
            t = t.instant().format(PromQueryFormat.TABLE)
        else:
            t = t.range()
        out.append(t)
    return out


def _panel(config: Config, builder, title: str, description: str, queries: list[Q], *,
           unit: str | None = None, w: int = 12, h: int = 8):
    """Shared panel defaults: data source variable, targets with ref ids, size, unit."""
    p = builder.title(title).description(" ".join(description.split()))
    p = p.datasource(_ds(config)).span(w).height(h).targets(_targets(config, queries))
    if unit:
        p = p.unit(unit)
    return p


def _dashboard(config: Config, slug: str, title: str, description: str) -> dash.Dashboard:
    """Shared dashboard defaults: stable uid, tags, time zone, refresh, data source variable."""
    return (
        dash.Dashboard(title)
        .uid(f"{config.dashboard_uid_prefix}-{slug}")
        .description(description)
        .tags(TAGS)
        .timezone(config.dashboard_timezone)
        .refresh(config.dashboard_refresh)
        .time(config.dashboard_time_from, "now")
        .readonly()
        .tooltip(dash_m.DashboardCursorSync.CROSSHAIR)
        .with_variable(
            dash.DatasourceVariable("datasource").id("datasource").label("Data source").type("prometheus")
            .current(dash_m.VariableOption(text="Prometheus", value=config.datasource_uid))
        )
    )


def _custom_var(name: str, label: str, values: tuple[str, ...], default: str):
    return (
        dash.CustomVariable(name).id(name).label(label).values(",".join(values))
        .current(dash_m.VariableOption(text=default, value=default))
    )


def _legend_table():
    return (common_b.VizLegendOptions().display_mode(common_m.LegendDisplayMode.TABLE)
            .placement(common_m.LegendPlacement.RIGHT).show_legend(True)
            .calcs(["lastNotNull", "max"]))


def _ts(config: Config, title: str, description: str, queries: list[Q], unit: str, **kw):
    p = timeseries.Panel().legend(_legend_table()).tooltip(
        common_b.VizTooltipOptions().mode(common_m.TooltipDisplayMode.MULTI)
        .sort(common_m.SortOrder.DESCENDING))
    return _panel(config, p.fill_opacity(0).line_width(1), title, description, queries,
                  unit=unit, **kw)


def _stat(config: Config, title: str, description: str, queries: list[Q], unit: str, w=4, h=4):
    p = stat.Panel().graph_mode(common_m.BigValueGraphMode.AREA).reduce_options(
        common_b.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    return _panel(config, p, title, description, queries, unit=unit, w=w, h=h)


def _merged_table(config: Config, title: str, description: str, queries: list[Q],
                  columns: dict[str, tuple[str, str]], *, w: int = 12, h: int = 8):
    """An instant-query table: one row per key, one column per query, merged on labels.

    ``columns`` maps "Value #<refId>" to (column title, unit).
    """
    renames = {"Value #" + k: title_ for k, (title_, _) in columns.items()}
    p = table.Panel()
    for k, (title_, unit) in columns.items():
        p = p.override_by_name(title_, [dash_m.DynamicConfigValue(id_val="unit", value=unit)])
    p = p.unit(next(iter(columns.values()))[1])  # a default unit, the columns' own override it
    p = p.with_transformation(dash_m.DataTransformerConfig(id_val="merge", options={}))
    p = p.with_transformation(dash_m.DataTransformerConfig(
        id_val="organize",
        options={"excludeByName": {"Time": True}, "renameByName": renames, "indexByName": {}},
    ))
    return _panel(config, p, title, description, queries, w=w, h=h)


def _band_overrides(p, low: str, high: str):
    """Draw ``high`` filled down to ``low``: the 95% interval as a shaded band."""
    return (
        p.override_by_name(high, [
            dash_m.DynamicConfigValue(id_val="custom.fillBelowTo", value=low),
            dash_m.DynamicConfigValue(id_val="custom.fillOpacity", value=20),
            dash_m.DynamicConfigValue(id_val="custom.lineWidth", value=0),
        ])
        .override_by_name(low, [
            dash_m.DynamicConfigValue(id_val="custom.lineWidth", value=0),
        ])
    )


# --- economists' dashboard -------------------------------------------------------------


def estimates_dashboard(config: Config) -> dash.Dashboard:
    n = Names(config)
    cell = dict(period="$period", domain="$domain", key="$key")

    def est(metric="suitcase_estimate_usd", by="period, domain, key", **m):
        return estimate(config, metric, by=by, **m)

    d = _dashboard(
        config, "estimates", "Suitcase exports: estimates",
        "Informal (suitcase) handicraft exports with 95% intervals, against recorded exports.",
    )
    d = d.with_variable(_custom_var("period", "Period", PERIODS, "week_to_date"))
    d = d.with_variable(_custom_var("domain", "Breakdown", DOMAINS, "total"))
    d = d.with_variable(
        dash.QueryVariable("key").id("key").label("Cell").datasource(_ds(config))
        .query(f'label_values(suitcase_estimate_usd{{{config.sel(domain="$domain")}}}, key)')
        .refresh(dash_m.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dash_m.VariableSort.ALPHABETICAL_ASC)
        .current(dash_m.VariableOption(text="all", value="all"))
    )

    total = dict(period="$period", domain="total", key="all")
    d = d.with_row(dash.Row("Headline ($period, all travellers)"))
    d = d.with_panel(_stat(config, "Informal exports", """Point estimate of handicrafts
        carried out in luggage, not covered by any export declaration, in US dollars.""",
        [Q(est(**total), "estimate")], USD, w=5))
    d = d.with_panel(_stat(config, "95% interval", """The range that covers the true value in
        95 of 100 repetitions of the sampling: low and high bound.""",
        [Q(est("suitcase_estimate_ci_low_usd", **total), "low"),
         Q(est("suitcase_estimate_ci_high_usd", **total), "high")], USD, w=5))
    d = d.with_panel(_stat(config, "Recorded (formal) exports", """Handicraft exports declared
        to customs in the same period: reported beside the estimate, never added to it.""",
        [Q(est("suitcase_formal_exports_usd", **total), "formal")], USD, w=5))
    d = d.with_panel(_stat(config, "Informal per formal dollar", """Informal estimate divided by
        recorded exports: 0.8 means 80 cents carried in luggage per recorded dollar.""",
        [Q(f'{n.informal_formal}{{period="$period",domain="total",key="all"}}', "ratio")],
        PER_DOLLAR, w=5))
    d = d.with_panel(_stat(config, "Precision (±)", """Half-width of the 95% interval as a share
        of the estimate: 10% reads "plus or minus 10%".""",
        [Q(f'{n.ci_halfwidth}{{period="$period",domain="total",key="all"}}', "±")],
        SHARE, w=4))

    d = d.with_row(dash.Row("Estimate of $domain $key with its 95% interval"))
    band = _ts(config, "Informal estimate, 95% band, and formal exports", """The estimate
        (line) with its 95% interval (shaded) for the selected period and cell, and recorded
        exports of the same cell for comparison.""",
        [Q(est(**cell), "estimate"),
         Q(est("suitcase_estimate_ci_low_usd", **cell), "95% low"),
         Q(est("suitcase_estimate_ci_high_usd", **cell), "95% high"),
         Q(est("suitcase_formal_exports_usd", **cell), "formal")], USD, w=16, h=10)
    d = d.with_panel(_band_overrides(band, "95% low", "95% high"))
    jump = _ts(config, "Week to date against the last 4 weeks", """This week's running estimate
        against the range (lowest to highest, shaded) of the last 4 closed weeks at the same
        point of the week. Far outside the band raises SuitcaseEstimateJump.""",
        [Q(est(by="domain, key", period="week_to_date", domain="$domain", key="$key"),
           "week to date"),
         Q(est("suitcase_estimate_recent_range_usd", by="domain, key", bound="low",
               domain="$domain", key="$key"), "4-week low"),
         Q(est("suitcase_estimate_recent_range_usd", by="domain, key", bound="high",
               domain="$domain", key="$key"), "4-week high")], USD, w=8, h=10)
    d = d.with_panel(_band_overrides(jump, "4-week low", "4-week high"))

    def breakdown(domain: str, noun: str):
        m = dict(period="$period", domain=domain)
        return _merged_table(config, f"By {noun}", f"""Estimate, 95% interval and recorded
            exports per {noun}, for the selected period.""",
            [Q(est(by="key", **m), instant=True),
             Q(est("suitcase_estimate_ci_low_usd", by="key", **m), instant=True),
             Q(est("suitcase_estimate_ci_high_usd", by="key", **m), instant=True),
             Q(est("suitcase_formal_exports_usd", by="key", **m), instant=True),
             Q(f'max by (key) ({n.informal_formal}{{period="$period",domain="{domain}"}})',
               instant=True)],
            {"A": ("Estimate", USD), "B": ("95% low", USD), "C": ("95% high", USD),
             "D": ("Formal", USD), "E": ("Informal / formal", PER_DOLLAR)}, w=12, h=9)

    d = d.with_row(dash.Row("By category"))
    d = d.with_panel(_panel(config, bargauge.Panel()
        .display_mode(common_m.BarGaugeDisplayMode.GRADIENT)
        .orientation(common_m.VizOrientation.HORIZONTAL)
        .reduce_options(common_b.ReduceDataOptions().calcs(["lastNotNull"]).values(False)),
        "Informal exports by category", f"""Point estimate per handicraft category
        ({", ".join(CATEGORIES)}).""",
        [Q(est(by="key", period="$period", domain="category"), "{{key}}", instant=True)],
        unit=USD, w=12, h=9))
    d = d.with_panel(breakdown("category", "category"))

    d = d.with_row(dash.Row("By border post"))
    located = (
        f'{est(by="key", period="$period", domain="border_post")}'
        f" * on (key) group_left (latitude, longitude, place) {n.post_location}"
        f" or on (key) 0 * {n.post_location}"
    )
    marker_style = {
        "size": {"field": "Value", "fixed": 5, "min": 4, "max": 30},
        "color": {"field": "Value", "fixed": "dark-green"},
        "opacity": 0.6,
        "symbol": {"mode": "fixed", "fixed": "img/icons/marker/circle.svg"},
        "text": {"mode": "field", "field": "key", "fixed": ""},
        "textConfig": {"fontSize": 12, "offsetX": 0, "offsetY": -14,
                       "textAlign": "center", "textBaseline": "bottom"},
    }
    gm = (
        geomap.Panel()
        .view(geomap.MapViewConfig().id("coords").lat(33).lon(53).zoom(5))
        .controls(geomap.ControlsOptions().show_zoom(True).mouse_wheel_zoom(True))
        .basemap(common_b.MapLayerOptions().type("default").name("Basemap"))
        .layers([
            common_b.MapLayerOptions().type("markers").name("Border posts")
            .config({"showLegend": True, "style": marker_style})
            .location(common_b.FrameGeometrySource().mode(common_m.FrameGeometrySourceMode.COORDS)
                      .latitude("latitude").longitude("longitude"))
        ])
        .tooltip(geomap.TooltipOptions().mode(geomap_m.TooltipMode.DETAILS))
        .with_transformation(dash_m.DataTransformerConfig(
            id_val="convertFieldType",
            options={"fields": {}, "conversions": [
                {"targetField": "latitude", "destinationType": "number"},
                {"targetField": "longitude", "destinationType": "number"},
            ]},
        ))
    )
    d = d.with_panel(_panel(config, gm, "Informal exports by border post", """Each border post
        at its place on the map, sized and coloured by its estimate for the selected period;
        posts without an estimate show as 0. Coordinates come from the reference codes
        through the border_post:suitcase_location:info recording rule.""",
        [Q(located, instant=True)], unit=USD, w=12, h=12))
    d = d.with_panel(breakdown("border_post", "border post").height(12))

    d = d.with_row(dash.Row("By destination region"))
    d = d.with_panel(_panel(config, bargauge.Panel()
        .display_mode(common_m.BarGaugeDisplayMode.GRADIENT)
        .orientation(common_m.VizOrientation.HORIZONTAL)
        .reduce_options(common_b.ReduceDataOptions().calcs(["lastNotNull"]).values(False)),
        "Informal exports by destination region", f"""Point estimate per destination region
        ({", ".join(DESTINATION_REGIONS)}).""",
        [Q(est(by="key", period="$period", domain="destination_region"), "{{key}}",
           instant=True)], unit=USD, w=12, h=9))
    d = d.with_panel(breakdown("destination_region", "destination region"))

    d = d.with_row(dash.Row("Informal to formal, and revisions"))
    d = d.with_panel(_ts(config, "Informal per formal dollar by $domain", """Informal estimate
        divided by recorded exports, for every cell of the selected breakdown. Cells without
        recorded exports have no ratio.""",
        [Q(f'{n.informal_formal}{{period="$period",domain="$domain"}}', "{{key}}")],
        PER_DOLLAR, w=12, h=9))
    d = d.with_panel(_ts(config, "Revisions of past weeks ($domain $key)", """How much each of
        the last 4 closed weeks has changed since its first (flash) estimate, as late events
        arrived: week 1 is last week.""",
        [Q(f'max by (week_offset) (suitcase_estimate_revision_usd'
           f'{{{config.sel(domain="$domain", key="$key")}}})', "week -{{week_offset}}")],
        USD, w=12, h=9))
    d = d.with_panel(_ts(config, "Late events per second", """Events accepted after their week
        had closed; each one revises a published week.""",
        [Q(n.late, "{{topic}}")], "ops", w=12, h=8))
    d = d.with_panel(_ts(config, "Precision (±) by $domain", """Half-width of the 95%
        interval as a share of the estimate, per cell of the selected breakdown.""",
        [Q(f'{n.ci_halfwidth}{{period="$period",domain="$domain"}}', "{{key}}")],
        SHARE, w=12, h=8))
    return d


# --- operations dashboard --------------------------------------------------------------


def operations_dashboard(config: Config) -> dash.Dashboard:
    n = Names(config)
    t = '{topic=~"$topic"}'
    up = f"up{{{config.sel()}}}"
    d = _dashboard(config, "operations", "Suitcase exports: operations",
                   "Health of the stream workers that compute the suitcase export estimates.")
    d = d.with_variable(
        dash.QueryVariable("topic").id("topic").label("Topic").datasource(_ds(config))
        .query(f'label_values(suitcase_events_accepted_total{{{config.sel()}}}, topic)')
        .refresh(dash_m.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dash_m.VariableSort.ALPHABETICAL_ASC)
        .multi(True).include_all(True).all_value(".*")
        .current(dash_m.VariableOption(text="All", value="$__all"))
    )

    d = d.with_row(dash.Row("Workers"))
    d = d.with_panel(_stat(config, "Workers up", """Workers Prometheus scraped successfully, of
        all worker targets.""",
        [Q(f"sum({up})", "up"), Q(f"count({up})", "targets")], "none", w=4))
    d = d.with_panel(_stat(config, "Rejected share", """Share of all events read in the last
        """ + config.rate_window + """ that were rejected.""",
        [Q(n.reject_ratio_all, "rejected")], SHARE, w=4))
    d = d.with_panel(_stat(config, "Estimates published per minute", """How often the workers
        publish a new estimate.""",
        [Q(f"sum(rate(suitcase_estimates_published_total{{{config.sel()}}}[$__rate_interval])) * 60",
           "per minute")], "none", w=4))
    d = d.with_panel(_ts(config, "Worker health", """1 when a worker's last scrape succeeded, 0
        when it failed.""", [Q(up, "{{instance}}")], "none", w=6, h=4))
    d = d.with_panel(_panel(config, table.Panel(), "Worker versions", """Workers per build
        version; more than one version for long raises SuitcaseWorkerVersionsMixed.""",
        [Q(f"count by (version) (suitcase_build_info{{{config.sel()}}})", instant=True)],
        unit="none", w=6, h=4))

    d = d.with_row(dash.Row("Throughput"))
    d = d.with_panel(_ts(config, "Accepted events per second", """Events accepted per topic,
        summed over workers.""", [Q(n.accepted + t, "{{topic}}")], "ops"))
    d = d.with_panel(_ts(config, "Duplicates per second", """Events dropped as duplicates of an
        event already counted (producer retries).""", [Q(n.duplicate + t, "{{topic}}")], "ops"))
    d = d.with_panel(_ts(config, "Time since last processed event", """Seconds since any worker
        last processed an event of the topic; a rising line is a quiet feed.""",
        [Q(n.processed_age + t, "{{topic}}")], "s"))
    d = d.with_panel(_ts(config, "Event clock behind now", """How far the newest event time seen
        per topic is behind the wall clock.""", [Q(n.event_clock_age + t, "{{topic}}")], "s"))

    d = d.with_row(dash.Row("Rejects and dead letters"))
    d = d.with_panel(_ts(config, "Rejects by reason", """Rejected events per second by topic and
        reason (missing_field:<f>, bad_type:<f>, unknown_code:<f>, ...).""",
        [Q(n.rejected_by_reason + t, "{{topic}} {{reason}}")], "ops"))
    d = d.with_panel(_ts(config, "Rejected share per topic", """Share of each topic's events
        that were rejected.""", [Q(n.reject_ratio + t, "{{topic}}")], SHARE))
    d = d.with_panel(_ts(config, "Dead-letter writes per second", """Events written to the
        dead-letter topic, against all rejections; the two lines should coincide.""",
        [Q(n.deadletter, "dead-letter {{topic}}"),
         Q(f"sum({n.rejected})", "rejected (all topics)")], "ops"))
    d = d.with_panel(_stat(config, "Dead letters, last 24h", """Events written to the
        dead-letter topic in the last 24 hours, all topics.""",
        [Q(f"sum(increase(suitcase_deadletter_total{{{config.sel()}}}[24h]))", "dead letters")],
        "none", w=12, h=8))

    d = d.with_row(dash.Row("Lag"))
    d = d.with_panel(_ts(config, "Event lag quantiles", """Time from Kafka receiving an event to
        a worker processing it: median, 90th and 99th percentile per topic.""",
        [Q(n.lag_quantile + t, "{{topic}} p{{quantile}}")], "s"))
    d = d.with_panel(_ts(config, "Consumer lag per topic", """Messages not yet read, summed
        over partitions.""", [Q(n.consumer_lag + t, "{{topic}}")], "none"))
    d = d.with_panel(_ts(config, "Consumer lag per partition", """Messages not yet read per
        partition; one partition growing alone points to a stuck worker.""",
        [Q(f'sum by (topic, partition) (suitcase_consumer_lag_messages{{{config.sel(topic="~$topic")}}})',
           "{{topic}}/{{partition}}")], "none"))
    d = d.with_panel(_ts(config, "Events held for an exchange rate", """Events waiting for an
        exchange rate to convert their amounts.""", [Q(n.held + t, "{{topic}}")], "none"))

    d = d.with_row(dash.Row("Random inspections this week"))
    d = d.with_panel(_merged_table(config, "Inspections per stratum", """Random inspections,
        departures and the inspected share per border post and traveller group this week.
        Fewer than """ + f"{config.inspections_min}" + """ inspections with many departures
        raises SuitcaseInspectionsTooFew.""",
        [Q(n.inspections, instant=True), Q(n.departures, instant=True),
         Q(n.sampling_fraction, instant=True)],
        {"A": ("Random inspections", "none"), "B": ("Departures", "none"),
         "C": ("Inspected share", SHARE)}, w=12, h=12))
    d = d.with_panel(_ts(config, "Random inspections per stratum", """Random inspections so far
        this week per border post and traveller group.""",
        [Q(n.inspections, "{{border_post}} {{group}}")], "none", w=12, h=12))
    return d


# --- output and listing ----------------------------------------------------------------


def dashboards(config: Config) -> dict[str, dict]:
    """File name -> dashboard JSON model.

    Queries select ``job="$job"``, never a hard-coded job: a ``job`` variable (after the
    data source, before the variables whose queries use it) defaults to ``config.job``.
    """
    templated = config.replace(job="$job")
    job = json.loads(json.dumps(_custom_var("job", "Job", (config.job,), config.job).build(),
                                cls=JSONEncoder))
    out = {}
    for name, builder in (("suitcase-estimates.json", estimates_dashboard(templated)),
                          ("suitcase-operations.json", operations_dashboard(templated))):
        model = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
        model["templating"]["list"].insert(1, job)
        _number_panels(model)
        out[name] = model
    return out


def _number_panels(model: dict) -> None:
    """Stable, unique panel ids in layout order (the SDK leaves them all 0), and empty
    rather than null options for panels that set none."""
    for i, panel in enumerate(_walk_panels(model), start=1):
        panel["id"] = i
        if panel.get("options", {}) is None:
            panel["options"] = {}


def _walk_panels(model: dict):
    for panel in model.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def variable_defaults(model: dict) -> dict[str, str]:
    """Template variable -> the value a live query should use for it."""
    values = {"__rate_interval": "5m", "__interval": "1m"}
    for var in model.get("templating", {}).get("list", []):
        current = var.get("current", {}).get("value")
        if var.get("allValue") and current == "$__all":
            current = var["allValue"]
        values[var["name"]] = current if isinstance(current, str) else ""
    return values


def resolve(expr: str, values: dict[str, str]) -> str:
    """Replace ``$name`` and ``${name}`` template variables with ``values``."""
    return re.sub(r"\$\{?(\w+)\}?", lambda m: values.get(m.group(1), m.group(0)), expr)


def panel_queries(config: Config | None = None, *, resolved: bool = True) -> list[dict]:
    """Every PromQL expression of every panel of every dashboard.

    Each item: ``dashboard`` (uid), ``panel`` (title), ``ref_id``, ``instant`` and ``expr``;
    with ``resolved`` the dashboard's template variables are replaced by their default
    values, so the expression runs as it is against Prometheus.
    """
    from .config import DEFAULT

    config = config or DEFAULT
    out = []
    for model in dashboards(config).values():
        values = variable_defaults(model)
        for panel in _walk_panels(model):
            for target in panel.get("targets") or []:
                expr = target["expr"]
                out.append({
                    "dashboard": model["uid"],
                    "panel": panel["title"],
                    "ref_id": target["refId"],
                    "instant": bool(target.get("instant")),
                    "expr": resolve(expr, values) if resolved else expr,
                })
    return out
