//! Tests of where a packet socket's reader got a packet that a tap saw.

use mace_core::fifo::{fifo_slot, Fifo, FifoSlot};
use mace_core::table::BucketLock;
use mace_core::tapread::{
    made_readable, reader_did, ReaderEvent, TapRead, NS_WORD, READ_WORD, TAP_WORD,
};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Barrier, Mutex, MutexGuard};
use std::thread;

use ReaderEvent::{Read, WaitReturned, WaitStarted};

/// A plain mutex as the queue's lock.
struct Lock(Mutex<()>);

impl BucketLock for Lock {
    type Guard<'a> = MutexGuard<'a, ()>;
    fn lock(&self) -> MutexGuard<'_, ()> {
        self.0.lock().unwrap()
    }
}

const W: usize = 7;
type Queue = Fifo<Vec<FifoSlot<W>>, Lock, W>;

fn queue() -> Queue {
    Fifo::new((0..8).map(|_| fifo_slot()).collect(), Lock(Mutex::new(())))
}

/// A record of namespace `ns` that the tap saw at `t_tap`.
fn record(ns: u64, t_tap: u64) -> [u64; W] {
    let mut rec = [0; W];
    rec[NS_WORD] = ns;
    rec[TAP_WORD] = t_tap;
    rec[READ_WORD] = TapRead::NEW.word();
    rec
}

/// The state of each record of `q`, oldest first.
fn states(q: &Queue) -> Vec<TapRead> {
    let mut out = Vec::new();
    q.update_each(|rec| out.push(TapRead::from_word(rec[READ_WORD])));
    out
}

#[test]
fn a_new_or_readable_packet_is_not_got() {
    assert!(!TapRead::NEW.got());
    assert_eq!(TapRead::NEW.end(), None);
    let readable = TapRead::NEW.made_readable(100, false);
    assert!(!readable.got());
    assert_eq!(readable.end(), None);
    // A wait's return or a read before it is readable changes nothing.
    assert_eq!(TapRead::NEW.on(WaitReturned, 100), TapRead::NEW);
    assert_eq!(TapRead::NEW.on(Read, 100), TapRead::NEW);
    assert_eq!(TapRead::NEW.on(WaitStarted, 100), TapRead::NEW);
}

#[test]
fn a_busy_reader_gets_it_at_its_next_wait() {
    // Readable while the tool was busy: its next wait is where it got it.
    let s = TapRead::NEW.made_readable(100, false).on(WaitStarted, 250);
    assert_eq!(s.end(), Some(250));
    // Final: a later wait's passes and starts leave it.
    assert_eq!(s.on(WaitReturned, 300).end(), Some(250));
    assert_eq!(s.on(WaitStarted, 400).end(), Some(250));
    assert_eq!(s.made_readable(500, true).end(), Some(250));
}

#[test]
fn a_sleeping_wait_ends_where_it_returned_until_the_next_wait() {
    // The wait started (the namespace has a ring reader), the packet
    // became readable at 100, which woke the wait: its next pass at 130.
    let s = TapRead::NEW.made_readable(100, true);
    assert_eq!(s.end(), Some(100), "provisional: where it became readable");
    let s = s.on(WaitReturned, 130);
    assert_eq!(s.end(), Some(130), "the wait's pass replaces it");
    // The tool takes it from its ring, prints, and waits again at 180.
    let s = s.on(WaitStarted, 180);
    assert_eq!(s.end(), Some(180));
    // Not provisional any more.
    assert_eq!(s.on(WaitReturned, 200).end(), Some(180));
}

#[test]
fn a_wait_that_returned_with_it_unseen_ends_where_it_became_readable() {
    // The wait started before the packet was readable and found it
    // readable at once: no later pass. The tool exits after this reply.
    let s = TapRead::NEW.made_readable(100, true);
    assert!(s.got());
    assert_eq!(s.end(), Some(100));
}

#[test]
fn an_epoll_reader_keeps_the_time_its_wait_returned_with_it() {
    // epoll makes no first pass: readable, then the wait returned at 120.
    let s = TapRead::NEW.made_readable(100, false).on(WaitReturned, 120);
    assert_eq!(s.end(), Some(120));
    // A later wait's return, for later packets, does not move it.
    assert_eq!(s.on(WaitReturned, 400).end(), Some(120));
    // A read of the syscall tracepoints' readers does: the reader got it.
    assert_eq!(s.on(Read, 150).end(), Some(150));
}

#[test]
fn a_read_gets_what_is_readable() {
    let s = TapRead::NEW.made_readable(100, false).on(Read, 110);
    assert_eq!(s.end(), Some(110));
    let s = TapRead::NEW.made_readable(100, true).on(Read, 105);
    assert_eq!(s.end(), Some(105));
}

#[test]
fn times_keep_clear_of_the_flags() {
    // No monotonic time has the top bits; one that had them is cut.
    let t = u64::MAX;
    let s = TapRead::NEW.made_readable(t, true);
    assert_eq!(s.end(), Some(t >> 2));
    assert_eq!(s.on(WaitReturned, t).end(), Some(t >> 2));
    assert_eq!(s.on(WaitStarted, t).end(), Some(t >> 2));
}

#[test]
fn the_queue_updates_only_the_namespace_s_packets() {
    let q = queue();
    let ring = AtomicBool::new(false);
    assert!(q.push(&record(7, 100)));
    assert!(q.push(&record(8, 100)));
    assert!(
        q.push(&record(7, 300)),
        "seen after the socket's call below"
    );
    assert!(!made_readable(&q, &ring, 7, 200), "nobody got any");
    let s = states(&q);
    assert_eq!(s[0], TapRead::NEW.made_readable(200, false));
    assert_eq!(s[1], TapRead::NEW, "another namespace's");
    assert_eq!(s[2], TapRead::NEW, "the tap saw it after the call");
    assert!(reader_did(&q, &ring, 7, WaitStarted, 250));
    assert!(ring.load(Relaxed));
    let s = states(&q);
    assert_eq!(s[0].end(), Some(250));
    assert_eq!(s[1], TapRead::NEW);
    assert_eq!(s[2], TapRead::NEW);
    // Readable while the reader waits: got, provisionally.
    assert!(made_readable(&q, &ring, 7, 400));
    assert_eq!(states(&q)[2].end(), Some(400));
    // Its wait's pass.
    assert!(reader_did(&q, &ring, 7, WaitReturned, 420));
    assert!(ring.load(Relaxed), "still a ring reader");
    assert_eq!(states(&q)[2].end(), Some(420));
    assert_eq!(states(&q)[0].end(), Some(250), "the final one stays");
    // A read gets the provisional one; a reader that reads takes nothing
    // from a ring.
    assert!(reader_did(&q, &ring, 7, Read, 440));
    assert_eq!(states(&q)[2].end(), Some(440));
    assert!(!ring.load(Relaxed));
    // Nothing changed: nothing to sweep sooner.
    assert!(!reader_did(&q, &ring, 7, WaitReturned, 450));
    assert!(!reader_did(&q, &ring, 7, WaitStarted, 460));
    assert_eq!(states(&q)[2].end(), Some(440));
}

#[test]
fn a_packet_readable_during_a_signal_handler_ends_where_it_became_readable() {
    // hping3: a signal ends its wait (the wait's pass after the wakeup finds
    // nothing), its handler sends the last probe, the reply becomes
    // readable meanwhile, and libpcap takes it from the ring before it
    // would wait again; hping3 exits after its last reply.
    let q = queue();
    let ring = AtomicBool::new(false);
    assert!(!reader_did(&q, &ring, 7, WaitStarted, 100));
    assert!(!reader_did(&q, &ring, 7, WaitReturned, 150), "the signal");
    assert!(q.push(&record(7, 160)));
    assert!(made_readable(&q, &ring, 7, 170));
    assert_eq!(states(&q)[0].end(), Some(170));
    // Without a wait first (a reader seen only at its reads), readable is
    // not got.
    let q = queue();
    let ring = AtomicBool::new(false);
    assert!(q.push(&record(7, 160)));
    assert!(!made_readable(&q, &ring, 7, 170));
    assert_eq!(states(&q)[0].end(), None);
}

/// A wait that starts and a packet that becomes readable, on two threads
/// in either order, leave the packet got, whatever the tool does next:
/// the packet is readable after the queue's update of one of them, and
/// the wait started before, or after (then it finds it readable).
#[test]
fn a_wait_and_readiness_racing_leave_the_packet_got() {
    for round in 0..2000u64 {
        let q = Arc::new(queue());
        let ring = Arc::new(AtomicBool::new(false));
        assert!(q.push(&record(1, 10)));
        let start = Arc::new(Barrier::new(2));
        let reader = {
            let (q, ring, start) = (q.clone(), ring.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                reader_did(&q, &ring, 1, WaitStarted, 1000 + round);
            })
        };
        let socket = {
            let (q, ring, start) = (q.clone(), ring.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                made_readable(&q, &ring, 1, 1000 + round);
            })
        };
        reader.join().unwrap();
        socket.join().unwrap();
        let s = states(&q)[0];
        assert!(s.got(), "round {round}: {s:?}");
        assert_eq!(s.end(), Some(1000 + round));
    }
}
