//! Renders ferrovs-ctl's shell completions and man page from its clap definition
//! (`src/bin/ferrovs-ctl/cli.rs`) into OUT_DIR. ferrovs-ctl embeds them and prints them
//! on `ferrovs-ctl completions SHELL` and `ferrovs-ctl man`, which is how
//! `deploy/install.sh` installs them: the files always match the binary.

use std::path::PathBuf;

#[allow(dead_code)]
mod cli {
    include!("src/bin/ferrovs-ctl/cli.rs");
}

use clap::{CommandFactory, ValueEnum};
use cli::{Cli, Shell};

fn main() -> std::io::Result<()> {
    println!("cargo:rerun-if-changed=src/bin/ferrovs-ctl/cli.rs");
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let mut cmd = Cli::command();
    for shell in Shell::value_variants() {
        let generator = match shell {
            Shell::Bash => clap_complete::Shell::Bash,
            Shell::Zsh => clap_complete::Shell::Zsh,
            Shell::Fish => clap_complete::Shell::Fish,
            Shell::Elvish => clap_complete::Shell::Elvish,
            Shell::Powershell => clap_complete::Shell::PowerShell,
        };
        let name = shell.to_possible_value().expect("no skipped shells").get_name().to_string();
        let mut file = std::fs::File::create(out.join(format!("completion.{name}")))?;
        clap_complete::generate(generator, &mut cmd, "ferrovs-ctl", &mut file);
    }
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut page)?;
    std::fs::write(out.join("ferrovs-ctl.1"), page)
}
