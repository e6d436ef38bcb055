//! The application's side of the pool: command handlers and middleware (wsrv), and
//! per-connection callbacks (wsPool's `OnOpen`/`OnMessage`/`OnClose`/`OnError`).
//!
//! ```
//! use wsp_server::{App, Context, Next, Reply};
//! use serde_json::json;
//!
//! let app = App::new()
//!     // Refuse everything but `register` until the session has a uid.
//!     .middleware(|ctx: Context, next: Next| async move {
//!         if ctx.cmd() != "register" && ctx.get::<u64>("uid").is_none() {
//!             return Reply::error(403, "register first");
//!         }
//!         next.run(ctx).await
//!     })
//!     .handle("register", |ctx: Context| async move {
//!         #[derive(serde::Deserialize)]
//!         struct Body { uid: u64 }
//!         let body: Body = match ctx.bind() { Ok(b) => b, Err(reply) => return reply };
//!         ctx.set("uid", body.uid);
//!         Reply::ok(json!({ "uid": body.uid }))
//!     });
//! ```

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde_json::Value;
use wsp_proto::SendMsg;

use crate::pool::client::ClientHandle;
use crate::pool::hub::Hub;
use crate::pool::outbox::Pushed;
use crate::transport::frame::Frame;
use crate::wire::protocol::{status, Command, Format, JsonReply, Reply};

type HandlerFn = dyn Fn(Context) -> BoxFuture<'static, Reply> + Send + Sync;
type MiddlewareFn = dyn Fn(Context, Next) -> BoxFuture<'static, Reply> + Send + Sync;
type OpenHook = dyn Fn(&Hub, &ClientHandle) + Send + Sync;
type MessageHook = dyn Fn(&Hub, &ClientHandle, &SendMsg) + Send + Sync;
type CloseHook = dyn Fn(&Hub, &str) + Send + Sync;
type ErrorHook = dyn Fn(&Hub, &str, &str) + Send + Sync;

/// Handlers, middleware and callbacks. Build one, then give it to [`crate::Server`].
#[derive(Default, Clone)]
pub struct App {
    handlers: HashMap<String, Arc<HandlerFn>>,
    middleware: Vec<Arc<MiddlewareFn>>,
    on_open: Vec<Arc<OpenHook>>,
    on_message: Vec<Arc<MessageHook>>,
    on_close: Vec<Arc<CloseHook>>,
    on_error: Vec<Arc<ErrorHook>>,
}

impl App {
    /// An application with no handlers: only the built-in commands answer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Handles command `cmd` (a JSON name, or for protobuf frames the decimal `cmd` number).
    /// An application handler takes precedence over a built-in of the same name.
    pub fn handle<F, Fut>(mut self, cmd: impl Into<String>, f: F) -> Self
    where
        F: Fn(Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        self.handlers
            .insert(cmd.into(), Arc::new(move |ctx| Box::pin(f(ctx))));
        self
    }

    /// Adds a middleware; they run in the order added, around every command. A middleware
    /// calls `next.run(ctx)` to go on, or returns a reply of its own to abort.
    pub fn middleware<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(Context, Next) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        self.middleware
            .push(Arc::new(move |ctx, next| Box::pin(f(ctx, next))));
        self
    }

    /// Called once a connection is registered (after its query channels and uid are applied).
    pub fn on_open(mut self, f: impl Fn(&Hub, &ClientHandle) + Send + Sync + 'static) -> Self {
        self.on_open.push(Arc::new(f));
        self
    }

    /// Called for every `SendMsg` a client sends, before it is routed or handled.
    pub fn on_message(
        mut self,
        f: impl Fn(&Hub, &ClientHandle, &SendMsg) + Send + Sync + 'static,
    ) -> Self {
        self.on_message.push(Arc::new(f));
        self
    }

    /// Called once a connection has left the pool, with its client id.
    pub fn on_close(mut self, f: impl Fn(&Hub, &str) + Send + Sync + 'static) -> Self {
        self.on_close.push(Arc::new(f));
        self
    }

    /// Called when a connection fails (protocol error, oversize message, write timeout...),
    /// with its client id and a description.
    pub fn on_error(mut self, f: impl Fn(&Hub, &str, &str) + Send + Sync + 'static) -> Self {
        self.on_error.push(Arc::new(f));
        self
    }

    pub(crate) fn has_message_hooks(&self) -> bool {
        !self.on_message.is_empty()
    }

    pub(crate) fn opened(&self, hub: &Hub, client: &ClientHandle) {
        self.on_open.iter().for_each(|f| f(hub, client));
    }

    pub(crate) fn message(&self, hub: &Hub, client: &ClientHandle, msg: &SendMsg) {
        self.on_message.iter().for_each(|f| f(hub, client, msg));
    }

    pub(crate) fn closed(&self, hub: &Hub, client_id: &str) {
        self.on_close.iter().for_each(|f| f(hub, client_id));
    }

    pub(crate) fn errored(&self, hub: &Hub, client_id: &str, error: &str) {
        self.on_error.iter().for_each(|f| f(hub, client_id, error));
    }

    /// Runs `ctx` through the middleware, then the handler (application, then built-in).
    pub(crate) async fn dispatch(self: &Arc<Self>, ctx: Context) -> Reply {
        Next {
            app: self.clone(),
            index: 0,
        }
        .run(ctx)
        .await
    }
}

/// The rest of the middleware chain and the handler after it.
pub struct Next {
    app: Arc<App>,
    index: usize,
}

impl Next {
    /// Runs the next middleware, or the handler when none is left.
    pub async fn run(self, ctx: Context) -> Reply {
        if let Some(m) = self.app.middleware.get(self.index).cloned() {
            let next = Next {
                app: self.app,
                index: self.index + 1,
            };
            return m(ctx, next).await;
        }
        if let Some(h) = self.app.handlers.get(&ctx.command.name).cloned() {
            return h(ctx).await;
        }
        let has_hooks = self.app.has_message_hooks();
        super::for_client(&ctx.hub, &ctx.client, &ctx.command, has_hooks).await
    }
}

/// Per-connection values set by handlers (wsrv's `c.Set`/`c.Get`), typed.
#[derive(Clone, Default)]
pub struct Session(Arc<Mutex<HashMap<String, Arc<dyn Any + Send + Sync>>>>);

impl Session {
    /// A value set earlier on this connection, if it has type `T`.
    pub fn get<T: Clone + Send + Sync + 'static>(&self, key: &str) -> Option<T> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key).and_then(|v| v.downcast_ref::<T>()).cloned()
    }

    /// Sets a value for the rest of this connection's life.
    pub fn set<T: Send + Sync + 'static>(&self, key: impl Into<String>, value: T) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(key.into(), Arc::new(value));
    }

    /// Removes a value.
    pub fn remove(&self, key: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }
}

/// One request on its way through middleware and handler.
pub struct Context {
    pub(crate) hub: Hub,
    pub(crate) client: ClientHandle,
    pub(crate) session: Session,
    pub(crate) command: Command,
}

impl Context {
    /// The command name.
    pub fn cmd(&self) -> &str {
        &self.command.name
    }

    /// The decoded request.
    pub fn command(&self) -> &Command {
        &self.command
    }

    /// The request's arguments (JSON `data`; protobuf `msg` parsed as JSON).
    pub fn data(&self) -> &Value {
        &self.command.data
    }

    /// The request's `SendMsg`, when it came as protobuf.
    pub fn sendmsg(&self) -> Option<&SendMsg> {
        self.command.sendmsg.as_ref()
    }

    /// Deserializes the arguments into `T`; on failure, a 400 reply saying why.
    #[allow(clippy::result_large_err)]
    pub fn bind<T: DeserializeOwned>(&self) -> Result<T, Reply> {
        T::deserialize(&self.command.data).map_err(|e| {
            Reply::error(
                status::BAD_REQUEST,
                format!("bad arguments for `{}`: {e}", self.command.name),
            )
        })
    }

    /// The pool.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The calling client.
    pub fn client(&self) -> &ClientHandle {
        &self.client
    }

    /// The calling client's id.
    pub fn client_id(&self) -> &str {
        self.client.id()
    }

    /// This connection's session values.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// A session value (wsrv `c.Get`).
    pub fn get<T: Clone + Send + Sync + 'static>(&self, key: &str) -> Option<T> {
        self.session.get(key)
    }

    /// Sets a session value (wsrv `c.Set`).
    pub fn set<T: Send + Sync + 'static>(&self, key: impl Into<String>, value: T) {
        self.session.set(key, value)
    }

    /// Pushes a server message to this connection, in its format (wsrv `c.Push`).
    pub fn push(&self, cmd: &str, data: Value) -> Pushed {
        let frame = match self.command.format {
            Format::Json => Frame::json(&JsonReply {
                cmd: cmd.into(),
                seqno: Value::String(String::new()),
                status: status::OK,
                msg: String::new(),
                data,
            }),
            Format::Proto => Frame::sendmsg(&SendMsg {
                cmd: cmd.parse().unwrap_or(0),
                timestamp: crate::wire::protocol::now_ms(),
                to_client_id: self.client_id().into(),
                msg: data.to_string(),
                desc: cmd.into(),
                ..Default::default()
            }),
        };
        self.client.send(frame)
    }
}
