//! Work that must not slow what a caller waits for: the lowest scheduling class for it.

/// Puts the calling thread in the lowest scheduling class (Linux `SCHED_IDLE`, else the lowest
/// priority of its policy): it then gets only CPU time no other thread of the machine wants.
/// False when the platform refused (it keeps running as before).
pub fn lower_current_thread_priority() -> bool {
    use thread_priority::ThreadPriority;
    #[cfg(target_os = "linux")]
    {
        use thread_priority::{NormalThreadSchedulePolicy, ThreadSchedulePolicy};
        let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        let native = thread_priority::thread_native_id();
        if thread_priority::set_thread_priority_and_policy(native, ThreadPriority::Min, idle).is_ok() {
            return true;
        }
    }
    thread_priority::set_current_thread_priority(ThreadPriority::Min).is_ok()
}

/// Runs `work` on a thread of its own in the lowest scheduling class, e.g. a one-time load
/// a cold start would otherwise pay inside its first request: on less than one vCPU it takes
/// no CPU the start needs, and whoever then waits for its result blocks, which leaves it the
/// CPU. If no thread can be started, the first caller does the work itself.
pub fn spawn_idle(name: &str, work: fn()) {
    let _ = std::thread::Builder::new().name(name.into()).spawn(move || {
        lower_current_thread_priority();
        work();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn an_idle_thread_is_in_sched_idle() {
        let policy = std::thread::spawn(|| {
            assert!(lower_current_thread_priority());
            thread_priority::unix::thread_schedule_policy().unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(
            policy,
            thread_priority::unix::ThreadSchedulePolicy::Normal(
                thread_priority::unix::NormalThreadSchedulePolicy::Idle
            )
        );
    }
}
