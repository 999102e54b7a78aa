//! `vicibridge urls | head -1`: once the reader has gone, stop quietly like any Unix tool,
//! instead of `println!` panicking on the broken pipe. Covers every command that prints.

/// The status of a process that stopped on a broken pipe, as the shell reports one killed by
/// SIGPIPE (128 + 13): a pipeline under `set -o pipefail` sees it like `cat`'s.
pub const EXIT_STATUS: i32 = 141;

/// `print!`/`println!`/`eprintln!` panic with "failed printing to stdout: Broken pipe": exit
/// then, and let every other panic through to the default hook.
pub fn exit_quietly_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info.payload_as_str().unwrap_or_default();
        if message.starts_with("failed printing to std") && message.contains("Broken pipe") {
            std::process::exit(EXIT_STATUS);
        }
        default(info);
    }));
}
