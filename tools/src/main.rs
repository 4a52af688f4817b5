//! `strata`: the one binary — `strata serve` and the admin, produce and consume
//! commands. It parses arguments and calls the libraries; business logic lives there.

fn main() {
    eprintln!("strata: the broker and CLI arrive with the broker issue; see README.md");
    std::process::exit(2);
}
