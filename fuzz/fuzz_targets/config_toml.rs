//! The configuration file: any TOML text must load or be refused with an
//! error that names a key, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = tollgate::config::load_str(text, &[]) {
        // Rendering the error is part of the contract (it is printed).
        let _ = e.to_string();
    }
});
