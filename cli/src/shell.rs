//! Shell habits: completion scripts (clap_complete) and man pages (clap_mangen), both
//! generated from the same clap definition as the parser, so they never drift from it.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use clap_complete::Shell;

/// Flags of `wsp completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    shell: Shell,
}

/// Flags of `wsp man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write one page per subcommand (`wsp.1`, `wsp-serve.1`, …) into this directory instead
    /// of printing `wsp.1`.
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// Prints the completion script of `cmd` (the whole command line, from `main`).
pub fn completions(args: CompletionsArgs, mut cmd: clap::Command) -> anyhow::Result<ExitCode> {
    // Into a buffer first: clap_complete panics on a write error (a closed pipe).
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "wsp", &mut out);
    std::io::stdout().write_all(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// Prints the man page of `cmd` (the whole command line), or writes every page into a
/// directory.
pub fn man(args: ManArgs, cmd: clap::Command) -> anyhow::Result<ExitCode> {
    match args.dir {
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut out)?;
            std::io::stdout().write_all(&out)?;
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(cmd, &dir)
                .with_context(|| format!("writing man pages into {}", dir.display()))?;
            eprintln!("wsp man: pages written to {}", dir.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
