//! Fuzz target `requests`: see `ledger_server::fuzzing::requests`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = ledger_server::fuzzing::requests::check(data) {
        panic!("{violation}");
    }
});
