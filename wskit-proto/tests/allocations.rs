//! Steady state allocates nothing: once the buffers have grown, receiving a small message,
//! handing it to the application, dropping it, and sending a reply allocate no memory.
//! A counting global allocator checks it, counting only the allocations of the thread that
//! runs the test (the test harness's own thread may allocate meanwhile, under load).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use wskit_proto::frame::{OpCode, write_frame};
use wskit_proto::{Config, Event, Message, Protocol};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Whether this thread's allocations are counted (a const initializer: no allocation).
    static COUNTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn count() {
    if COUNTED.with(std::cell::Cell::get) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: delegates to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (see `alloc`).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: as for `alloc` and `dealloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// An open server, without compression (compressed messages are inflated into a new buffer
/// that becomes the message, one allocation per message by design).
fn open_server(streaming: bool) -> Protocol {
    let config = Config::default()
        .with_compression(None)
        .with_streaming(streaming);
    let mut client = Protocol::client(config.clone());
    let mut server = Protocol::server(config);
    let request = client.connect_request("localhost", "/");
    client.send_request(&request).unwrap();
    server.receive_data(&client.take_data_to_send()).unwrap();
    let Some(Event::Request(request)) = server.poll_event() else {
        panic!()
    };
    let response = server.accept(&request).unwrap();
    server.send_response(&response).unwrap();
    server.take_data_to_send();
    server
}

fn echo_once(server: &mut Protocol, frame: &[u8]) {
    server.receive_data(frame).unwrap();
    let message = match server.poll_event() {
        Some(Event::Message(message)) => message,
        // Streaming mode, which the tokio layer uses: a whole message in one fragment.
        Some(Event::Fragment(fragment)) => fragment.into_message().unwrap(),
        other => panic!("{other:?}"),
    };
    server.send_message(&message).unwrap();
    drop(message);
    // Written as an I/O layer writes: piece by piece until nothing is left.
    while !server.data_to_send().is_empty() {
        let n = server.data_to_send().len();
        server.consume_data_to_send(n);
    }
}

#[test]
fn echoing_small_messages_allocates_nothing_in_steady_state() {
    COUNTED.with(|counted| counted.set(true));
    for streaming in [false, true] {
        let mut server = open_server(streaming);
        let mut frame = Vec::new();
        write_frame(
            &mut frame,
            true,
            0,
            OpCode::Text,
            br#"{"id":1,"msg":"hello"}"#,
            Some([1, 2, 3, 4]),
        );
        for _ in 0..100 {
            echo_once(&mut server, &frame);
        }
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        for _ in 0..10_000 {
            echo_once(&mut server, &frame);
        }
        let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
        assert_eq!(
            allocations, 0,
            "{allocations} allocations for 10,000 messages"
        );
        // The messages really went through.
        server.receive_data(&frame).unwrap();
        let text = match server.poll_event() {
            Some(Event::Message(Message::Text(text))) => text,
            Some(Event::Fragment(fragment)) => {
                fragment.into_message().unwrap().as_text().unwrap().into()
            }
            other => panic!("{other:?}"),
        };
        assert!(text.contains("hello"), "{text}");
    }
}
