"""Traces (DESIGN.md "Traces and metrics"): `span(name, **attrs)`, `traced(name)`, `note(**attrs)`
and W3C `traceparent` in HTTP headers (`inject`, `server_span`).

Off unless the standard OpenTelemetry environment asks for traces: `OTEL_EXPORTER_OTLP_ENDPOINT`
(or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) or `OTEL_TRACES_EXPORTER` (`otlp`, `console`; `none`
turns it off, as does `OTEL_SDK_DISABLED=true`). Off costs a global read per call: nothing of
OpenTelemetry is imported. On, the SDK is set up once, at the first span: service name
`fleet-tui` (unless `OTEL_SERVICE_NAME` or `OTEL_RESOURCE_ATTRIBUTES` name one), a
BatchSpanProcessor per exporter (OTLP over HTTP/protobuf reads the usual `OTEL_EXPORTER_OTLP_*`
variables), flushed when the process exits. Without the `otel` extra: one warning line on
stderr, once, and no traces.

Attributes an operator searches by: `fleet.tenant_id`, `fleet.host`, `fleet.agent`,
`fleet.outcome` (keyword arguments `tenant`, `host`, `agent`, `outcome`; any other keyword `k`
becomes `fleet.k`). Never a message's text or a pane's output.

Imports nothing of the project: every layer may use it.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

_OFF, _ON = 1, 2
_state = 0  # 0: not decided yet
_tracer: Any = None
_provider: Any = None
_lock = threading.Lock()
_service = "fleet-tui"
_SHORT = {"tenant": "fleet.tenant_id", "host": "fleet.host", "agent": "fleet.agent"}


def wanted(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment asks for traces."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = _exporters(env)
    if exporters:
        return exporters != ["none"]
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def _exporters(env: Mapping[str, str]) -> list[str]:
    raw = env.get("OTEL_TRACES_EXPORTER", "")
    return [x.strip().lower() for x in raw.split(",") if x.strip()]


def set_service_name(name: str) -> None:
    """The service name to use when the environment names none (the gateway's is
    `fleet-tui-gateway`); only before the first span."""
    global _service
    _service = name


def enabled() -> bool:
    """True when spans are recorded (decides, and sets the SDK up, on the first call)."""
    if _state == 0:
        _decide()
    return _state == _ON


def _warn(text: str) -> None:
    try:
        sys.stderr.write(f"fleet-tui: warning: {text}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _decide() -> None:
    global _state, _tracer, _provider
    with _lock:
        if _state:
            return
        if not wanted():
            _state = _OFF
            return
        try:
            _provider = _sdk_provider()
        except ImportError as exc:
            _warn(
                f"OTEL_* asks for traces but the otel extra is not installed ({exc.name or exc}): "
                "no traces (pip install 'fleet-tui[otel]')"
            )
            _state = _OFF
            return
        except Exception as exc:  # a bad OTEL_* value: say it once, never crash a verb
            _warn(f"traces not set up: {type(exc).__name__}: {exc}")
            _state = _OFF
            return
        _tracer = _provider.get_tracer("fleet_tui")
        _state = _ON


def _sdk_provider() -> Any:
    from opentelemetry import trace
    from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    from fleet_tui import __version__

    env = os.environ
    named = env.get("OTEL_SERVICE_NAME") or "service.name=" in env.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    attrs: dict[str, str] = {SERVICE_VERSION: __version__}
    if not named:
        attrs[SERVICE_NAME] = _service
    provider = TracerProvider(resource=Resource.create(attrs))  # flushed at exit (atexit)
    for name in _exporters(env) or ["otlp"]:
        exporter: Any
        if name == "otlp":
            protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get(
                "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
            )
            if protocol != "http/protobuf":
                _warn(f"OTLP protocol {protocol!r} is not supported: exporting http/protobuf")
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
        elif name == "console":
            exporter = ConsoleSpanExporter(out=sys.stderr)  # stdout is `ps --json`'s
        elif name == "none":
            continue
        else:
            _warn(f"OTEL_TRACES_EXPORTER {name!r} is not supported (otlp, console, none)")
            continue
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider


def use_provider(provider: Any) -> None:
    """Record into `provider` from now on (tests: an SDK provider with an in-memory exporter);
    None turns spans off again."""
    global _state, _tracer, _provider
    with _lock:
        _provider = provider
        _tracer = provider.get_tracer("fleet_tui") if provider is not None else None
        _state = _ON if provider is not None else _OFF


_NAMES: dict[str, str] = {}  # keyword -> attribute name (keywords come from the code: few)
_PLAIN = frozenset({bool, int, float, str})


def _attrs(attrs: Mapping[str, object]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    names = _NAMES
    for key, value in attrs.items():
        if value is None:
            continue
        name = names.get(key)
        if name is None:
            name = _SHORT.get(key) or (key if "." in key else f"fleet.{key}")
            if len(names) < 4096:
                names[key] = name
        out[name] = value if type(value) in _PLAIN else str(value)
    return out


class _Off:
    """What `span()` gives when traces are off: every method does nothing."""

    __slots__ = ()
    recording = False

    def __enter__(self) -> _Off:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def set(self, **attrs: object) -> None:
        return None

    def rename(self, name: str) -> None:
        return None


OFF = _Off()


class _Span:
    __slots__ = ("_cm", "_span", "attrs", "kind", "name", "parent")
    recording = True

    def __init__(
        self, name: str, attrs: Mapping[str, object], kind: Any = None, parent: Any = None
    ) -> None:
        self.name, self.attrs, self.kind, self.parent = name, attrs, kind, parent

    def __enter__(self) -> _Span:
        kw: dict[str, Any] = {"attributes": _attrs(self.attrs)}
        if self.kind is not None:
            kw["kind"] = self.kind
        if self.parent is not None:
            kw["context"] = self.parent
        self._cm = _tracer.start_as_current_span(self.name, **kw)
        self._span = self._cm.__enter__()
        return self

    def __exit__(self, *exc: Any) -> Any:
        return self._cm.__exit__(*exc)

    def set(self, **attrs: object) -> None:
        self._span.set_attributes(_attrs(attrs))

    def rename(self, name: str) -> None:
        self._span.update_name(name)


def span(name: str, **attrs: object) -> _Span | _Off:
    """A context manager: a span named `name` (child of the current one) with `attrs`; its
    `set(**attrs)` adds attributes. An exception leaving it marks the span as an error."""
    if _state == _OFF or (_state == 0 and not enabled()):
        return OFF
    return _Span(name, attrs)


def traced(name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator: each call of the function runs in a span `name` (see `note`)."""

    def wrap(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            if _state == _OFF or (_state == 0 and not enabled()):
                return fn(*args, **kwargs)
            with _Span(name, {}):
                return fn(*args, **kwargs)

        return call

    return wrap


def note(**attrs: object) -> None:
    """Set attributes on the current span (nothing when there is none, or traces are off)."""
    if _state != _ON:
        return
    from opentelemetry import trace

    trace.get_current_span().set_attributes(_attrs(attrs))


def event(name: str, **attrs: object) -> None:
    """Add an event (a point in time with attributes) to the current span."""
    if _state != _ON:
        return
    from opentelemetry import trace

    trace.get_current_span().add_event(name, _attrs(attrs))


def inject(headers: MutableMapping[str, str]) -> None:
    """Add W3C `traceparent` (and `tracestate`) of the current span to outgoing HTTP headers."""
    if _state == _OFF or (_state == 0 and not enabled()):
        return
    from opentelemetry.propagate import inject as _inject

    _inject(headers)


def server_span(name: str, headers: Iterable[tuple[bytes, bytes]], **attrs: object) -> _Span | _Off:
    """A SERVER span continuing the trace named by the request's `traceparent` (ASGI
    headers); a root span without one."""
    if _state == _OFF or (_state == 0 and not enabled()):
        return OFF
    from opentelemetry.propagate import extract
    from opentelemetry.trace import SpanKind

    carrier: dict[str, str] = {}
    for key, value in headers:
        if key in (b"traceparent", b"tracestate"):
            carrier[key.decode("latin-1")] = value.decode("latin-1")
    return _Span(name, attrs, kind=SpanKind.SERVER, parent=extract(carrier))


def flush(timeout_ms: int = 5000) -> None:
    """Export what is batched now (the SDK also does it at exit)."""
    if _state == _ON and _provider is not None and hasattr(_provider, "force_flush"):
        _provider.force_flush(timeout_ms)
