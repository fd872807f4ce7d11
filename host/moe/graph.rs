//! A decode step captured once into a CUDA graph and replayed: the MoE layers' 9 launches each
//! (router, top-k, count, scatter, gather, gate/up, activation, down, combine) leave the CPU's
//! launch path, which at one token costs more than the kernels themselves.
//!
//! The graph holds device addresses, so everything it touches must outlive it and stay where it
//! is: [`DecodeGraph`] owns the step's input, output and workspace, and borrows the engine (its
//! loaded kernels) and the layers (their weights) for as long as it lives.

use std::sync::Arc;

use cudarc::driver::sys::{CUgraphInstantiate_flags, CUstreamCaptureMode};
use cudarc::driver::{CudaGraph, CudaSlice, CudaStream};
use half::bf16;

use crate::error::{DriverContext, Error, Result};
use crate::gemm::TacticChoice;
use crate::moe::layer::{ForwardVariants, MoeEngine, MoeLayer, MoeWorkspace, StepEvents, LAYER_STEPS};

/// `tokens` tokens through every layer of `layers`, captured into one CUDA graph: each replay
/// runs every layer on [`DecodeGraph::input`] (the step's MoE layers without the attention
/// between them, as `moe-demo` runs them) and leaves the last layer's output in
/// [`DecodeGraph::output`]. Write new tokens into [`DecodeGraph::input_mut`] between replays on
/// the same stream. Replays give the bits the same calls give eagerly.
pub struct DecodeGraph<'a> {
    graph: CudaGraph,
    stream: Arc<CudaStream>,
    tokens: usize,
    input: CudaSlice<bf16>,
    output: CudaSlice<bf16>,
    workspace: MoeWorkspace,
    variants: ForwardVariants,
    /// Per layer, the events the graph records around its steps (a timed capture only).
    events: Option<Vec<StepEvents>>,
    /// The kernels and weights the graph launches and reads.
    _uses: std::marker::PhantomData<(&'a MoeEngine, &'a [MoeLayer])>,
}

/// Whether a graph capture can record `stream`'s work: not the context's default (legacy)
/// stream, and not one whose buffers cudarc synchronizes with events across streams (those
/// waits cannot be captured); otherwise [`Error::Capture`] saying what to do instead.
pub(crate) fn check_capturable(stream: &Arc<CudaStream>) -> Result<()> {
    if stream.cu_stream().is_null() {
        return Err(Error::Capture(
            "the context's default stream is the legacy stream, which cannot be captured; use a stream \
             from CudaContext::new_stream"
                .into(),
        ));
    }
    if stream.context().is_managing_stream_synchronization() {
        return Err(Error::Capture(
            "cudarc tracks events across this context's streams; capture on a context with one stream, \
             or after CudaContext::disable_event_tracking"
                .into(),
        ));
    }
    Ok(())
}

impl MoeEngine {
    /// Captures a step of `tokens` tokens through `layers` (all of one config) on `stream`, with
    /// the variants `choice` selects. One eager step runs first (loading every kernel module the
    /// step needs, and making the device-data checks if the engine makes them); the captured
    /// step skips those checks, since a capture cannot read data back (the kernels stay inside
    /// their buffers whatever the data: `docs/validation.md`). The input starts as zeros.
    ///
    /// `stream` must be one a capture can record: not the context's default (legacy) stream,
    /// and not one whose buffers cudarc synchronizes with events across streams (its default
    /// once a context has more than one stream), since those waits cannot be captured. A
    /// program that runs on one stream makes it with `ctx.new_stream()` after
    /// `ctx.disable_event_tracking()`; anything else is refused with [`Error::Capture`].
    pub fn capture_decode<'a>(
        &'a self,
        stream: &Arc<CudaStream>,
        layers: &'a [MoeLayer],
        tokens: usize,
        choice: TacticChoice<'_>,
    ) -> Result<DecodeGraph<'a>> {
        self.capture(stream, layers, tokens, choice, false)
    }

    /// [`MoeEngine::capture_decode`] with an event recorded before each layer and after each of
    /// its steps ([`LAYER_STEPS`]), inside the graph: after a replay,
    /// [`DecodeGraph::step_times_us`] gives each layer's step times as the graph runs them (the
    /// events stand between the kernels, so a timed step runs a little slower than an untimed
    /// one: programmatic launch does not cross them).
    pub fn capture_decode_timed<'a>(
        &'a self,
        stream: &Arc<CudaStream>,
        layers: &'a [MoeLayer],
        tokens: usize,
        choice: TacticChoice<'_>,
    ) -> Result<DecodeGraph<'a>> {
        self.capture(stream, layers, tokens, choice, true)
    }

    fn capture<'a>(
        &'a self,
        stream: &Arc<CudaStream>,
        layers: &'a [MoeLayer],
        tokens: usize,
        choice: TacticChoice<'_>,
        timed: bool,
    ) -> Result<DecodeGraph<'a>> {
        let config = layers.first().ok_or(Error::Capture("no layers to capture".into()))?.config();
        check_capturable(stream)?;
        let mut workspace = MoeWorkspace::new(stream, config, tokens)?;
        let input = stream.alloc_zeros::<bf16>(tokens * config.hidden).during("allocating the step's input")?;
        let mut output = stream.alloc_zeros::<bf16>(tokens * config.hidden).during("allocating the step's output")?;
        let checks = self.gemm().input_checks();
        let mut events = match timed {
            true => Some(layers.iter().map(|_| StepEvents::new(stream.context())).collect::<Result<Vec<_>>>()?),
            false => None,
        };
        let mut step = |checks: bool, events: Option<&mut Vec<StepEvents>>| -> Result<ForwardVariants> {
            let mut first = None;
            let mut events = events.map(|e| e.iter_mut());
            for layer in layers {
                let layer_events = events.as_mut().and_then(|e| e.next());
                let v = self.forward_with(
                    stream,
                    layer,
                    &input,
                    tokens,
                    &mut output,
                    &mut workspace,
                    choice,
                    checks,
                    layer_events,
                )?;
                first.get_or_insert(v);
            }
            Ok(first.expect("at least one layer"))
        };
        step(checks, None)?;
        stream.begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL).during("starting a capture")?;
        let captured = step(false, events.as_mut());
        let graph = stream
            .end_capture(CUgraphInstantiate_flags(0))
            .during("instantiating the decode graph")?
            .ok_or(Error::Capture("the capture recorded no work".into()));
        let variants = captured?;
        Ok(DecodeGraph {
            graph: graph?,
            stream: stream.clone(),
            tokens,
            input,
            output,
            workspace,
            variants,
            events,
            _uses: std::marker::PhantomData,
        })
    }
}

impl DecodeGraph<'_> {
    /// Runs the captured step once on the stream it was captured on.
    pub fn replay(&self) -> Result<()> {
        self.graph.launch().during("replaying the decode graph")
    }

    /// The step's input, `[tokens, hidden]` bf16.
    pub fn input(&self) -> &CudaSlice<bf16> {
        &self.input
    }

    /// The step's input, to write the next tokens into (on the capture stream, before a replay).
    pub fn input_mut(&mut self) -> &mut CudaSlice<bf16> {
        &mut self.input
    }

    /// The last layer's output of the last replay, `[tokens, hidden]` bf16.
    pub fn output(&self) -> &CudaSlice<bf16> {
        &self.output
    }

    /// The workspace the step runs in (its routing is the last layer's of the last replay).
    pub fn workspace(&self) -> &MoeWorkspace {
        &self.workspace
    }

    /// Tokens per step.
    pub fn tokens(&self) -> usize {
        self.tokens
    }

    /// The variants the first layer's GEMMs run.
    pub fn variants(&self) -> ForwardVariants {
        self.variants
    }

    /// Each layer's step times in µs ([`LAYER_STEPS`]: each from the end of the step before it,
    /// so the gap before a kernel counts to its step) in the last replay of a graph from [`MoeEngine::capture_decode_timed`]; waits for the replay.
    /// An untimed graph is refused with [`Error::Capture`].
    pub fn step_times_us(&self) -> Result<Vec<[f64; LAYER_STEPS.len()]>> {
        let events = self.events.as_ref().ok_or(Error::Capture("the step was captured without events".into()))?;
        events.iter().map(StepEvents::times_us).collect()
    }

    /// The stream the step was captured on (and replays on).
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }
}
