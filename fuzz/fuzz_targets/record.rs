//! Fuzz target `record`: see `ledger_server::fuzzing::record`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = ledger_server::fuzzing::record::check(data) {
        panic!("{violation}");
    }
});
