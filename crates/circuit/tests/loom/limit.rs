//! Adaptive-limit models: admission never exceeds the limit, and a release racing a waiter's registration
//! never loses the wakeup (nor a slot handed to a waiter that gives up).
//!
//! Handles are `std::sync::Arc` because the owned API takes one (loom's `Arc` cannot be a method receiver);
//! every atomic and lock inside the limiter is loom's.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Wake, Waker};

use circuit::{AdaptiveLimit, ManualClock};
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::thread;

fn limit(initial: u32) -> std::sync::Arc<AdaptiveLimit<ManualClock>> {
    std::sync::Arc::new(
        AdaptiveLimit::aimd()
            .initial_limit(initial)
            .max_limit(initial)
            .clock(ManualClock::new())
            .build()
            .unwrap(),
    )
}

/// Records that it was woken.
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn flag_waker() -> (std::sync::Arc<Flag>, Waker) {
    let flag = std::sync::Arc::new(Flag(AtomicBool::new(false)));
    (flag.clone(), Waker::from(flag))
}

fn poll<F: Future + Unpin>(future: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(future).poll(&mut Context::from_waker(waker))
}

/// Three threads race for two slots on the lock-free path; none may ever see three holders.
#[test]
fn in_flight_never_exceeds_the_limit() {
    loom::model(|| {
        let limit = limit(2);
        let holders = std::sync::Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let (limit, holders) = (limit.clone(), holders.clone());
                thread::spawn(move || {
                    if let Some(token) = limit.try_acquire_owned() {
                        let now = holders.fetch_add(1, Ordering::SeqCst) + 1;
                        assert!(now <= 2, "{now} tokens out with a limit of 2");
                        holders.fetch_sub(1, Ordering::SeqCst);
                        token.success(std::time::Duration::from_millis(1));
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(limit.in_flight(), 0);
    });
}

/// The classic lost wakeup: the only token is released while a task finds the limit full and queues itself.
/// Whatever the interleaving, the task either gets the slot at once or is woken and then gets it.
#[test]
fn a_release_racing_a_registration_wakes_the_waiter() {
    loom::model(|| {
        let limit = limit(1);
        let token = limit.try_acquire_owned().unwrap();
        let releaser = thread::spawn(move || token.ignore());

        let (flag, waker) = flag_waker();
        let mut future = limit.acquire_owned_async();
        let first = poll(&mut future, &waker);
        releaser.join().unwrap();
        match first {
            Poll::Ready(token) => drop(token),
            Poll::Pending => {
                assert!(
                    flag.0.load(Ordering::SeqCst),
                    "the slot was freed but the waiter was never woken"
                );
                let Poll::Ready(token) = poll(&mut future, &waker) else {
                    panic!("woken but not granted");
                };
                drop(token);
            }
        }
        assert_eq!(limit.in_flight(), 0);
    });
}

/// A waiter gives up while the slot is being handed to it: the slot goes to the waiter behind it, or back to
/// the limiter, never nowhere.
#[test]
fn a_waiter_giving_up_during_the_hand_off_passes_the_slot_on() {
    loom::model(|| {
        let limit = limit(1);
        let token = limit.try_acquire_owned().unwrap();
        let (_, first_waker) = flag_waker();
        let (second_flag, second_waker) = flag_waker();
        let mut first = limit.acquire_owned_async();
        let mut second = limit.acquire_owned_async();
        assert!(poll(&mut first, &first_waker).is_pending());
        assert!(poll(&mut second, &second_waker).is_pending());

        let releaser = thread::spawn(move || token.ignore());
        drop(first);
        releaser.join().unwrap();

        assert!(
            second_flag.0.load(Ordering::SeqCst),
            "the freed slot reached neither waiter"
        );
        let Poll::Ready(token) = poll(&mut second, &second_waker) else {
            panic!("woken but not granted");
        };
        assert_eq!(limit.in_flight(), 1);
        drop(token);
        assert_eq!(limit.in_flight(), 0);
    });
}
