"""Open a run's source and sinks around a processor, or none of them: one place for ``run``, ``bench`` and the
panel.

Every part opened is entered on one ExitStack; if a later part fails to open, the stack closes the ones
already open (in reverse order) and the error propagates. Once all are open, the stack hands them to the
:class:`~realtime.pipeline.Pipeline`, whose ``stop()`` closes them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import ExitStack

from realtime.config import PipelineConfig
from realtime.pipeline import Pipeline
from realtime.processors import Processor
from realtime.sinks.base import Sink
from realtime.sinks.factory import SinkSpec, open_sink, parse_sink
from realtime.sources.base import Source
from realtime.stats import Stats

log = logging.getLogger(__name__)

SourceOpener = Callable[[], Source]
SinkOpener = Callable[[Source], Sink]


def spec_opener(spec: SinkSpec) -> SinkOpener:
    """Opens the sink ``spec`` names at the source's size, rate and mode."""
    def opener(source: Source) -> Sink:
        return open_sink(spec, width=source.width, height=source.height, fps=source.fps, live=source.live)

    return opener


def sink_openers(texts: Sequence[str]) -> list[SinkOpener]:
    """Openers for ``--output`` values; every value is parsed first, so a bad one fails before a camera opens."""
    return [spec_opener(spec) for spec in [parse_sink(text) for text in texts]]


def open_pipeline(*, source: SourceOpener, sinks: Sequence[SinkOpener], processor: Processor,
                  config: PipelineConfig, stats: Stats | None = None, owns_processor: bool = True) -> Pipeline:
    """Open the source, then each sink (given the open source), and wire them with ``processor``.

    On any failure everything opened so far is closed, and so is ``processor`` when ``owns_processor``;
    then the error propagates. On success the pipeline owns them all (``Pipeline.stop`` closes them).
    """
    with ExitStack() as stack:
        if owns_processor:
            stack.callback(processor.close)
        opened_source = stack.enter_context(source())
        opened_sinks = [stack.enter_context(open_one(opened_source)) for open_one in sinks]
        pipeline = Pipeline(source=opened_source, processor=processor, sinks=opened_sinks, config=config,
                            stats=stats)
        stack.pop_all()
    log.info("source %s (%dx%d @ %g fps) → %s", opened_source.name, opened_source.width, opened_source.height,
             opened_source.fps, ", ".join(s.name for s in opened_sinks) or "no output")
    return pipeline


def add_output(pipeline: Pipeline, text: str) -> Sink:
    """Open the ``--output`` value ``text`` at the pipeline's frame size and rate and attach it while it runs
    (e.g. a recording started from the panel). Returns the sink, for ``pipeline.remove_sink``."""
    sink = spec_opener(parse_sink(text))(pipeline.source)
    with ExitStack() as stack:
        stack.enter_context(sink)
        pipeline.add_sink(sink)
        stack.pop_all()
    return sink
