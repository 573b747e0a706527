//! A node's answer to a task as the client reads it; see
//! `src/targets/task_answer.rs`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| iicp_client_fuzz::targets::task_answer::run(data));
