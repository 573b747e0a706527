//! What runs a task for the pipeline: a handler given to `serve` or `start`,
//! whose result is a value, or the node's own backend handler, whose result
//! may be an engine's JSON text to relay as it came (`relayed.rs`).

use super::backend_handler::{BackendHandler, OutputFuture};
use super::handler::{HandlerError, HandlerFuture, TaskContext, TaskHandler};
use crate::backends::Output;
use crate::wire::TaskRequest;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The pipeline's task runner.
pub(crate) enum Runner {
    /// A handler of the library's user (`RunningNode` of `serve`/`start`).
    Handler(Arc<dyn TaskHandler>),
    /// The handler in front of a model server (`start_backend`).
    Backend(Arc<BackendHandler>),
}

impl Runner {
    /// Starts one task.
    pub fn run(&self, task: TaskRequest, ctx: TaskContext) -> Running {
        match self {
            Self::Handler(handler) => Running::Handler(handler.handle(task, ctx)),
            Self::Backend(backend) => Running::Backend(backend.run(task, ctx)),
        }
    }
}

/// A running task: the handler's own future, its value read as
/// [`Output::Value`] (no second box around it).
pub(crate) enum Running {
    Handler(HandlerFuture),
    Backend(OutputFuture),
}

impl Future for Running {
    type Output = Result<Output, HandlerError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Self::Handler(f) => f.as_mut().poll(cx).map(|r| r.map(Output::Value)),
            Self::Backend(f) => f.as_mut().poll(cx),
        }
    }
}
