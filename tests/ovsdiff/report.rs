//! What a run found: differences by class (with the smallest example of each), rules
//! ferrovs refuses that OVS accepts, and errors. Prints the summary and decides the
//! verdict: unclassified differences and errors fail the run.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use libtest_mimic::Failed;

use crate::classify::{Class, Difference};

struct Seen {
    count: u64,
    /// (size, text) of the smallest example: fewer rules and a shorter frame first.
    example: Option<(usize, String)>,
}

pub struct Report {
    /// Running one seed: print every difference in full.
    verbose: bool,
    cases: u64,
    frames: u64,
    classes: BTreeMap<Class, Seen>,
    refusals: BTreeMap<String, (u64, String)>,
    unclassified: Vec<String>,
    errors: Vec<String>,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn outputs(o: &[(u32, Vec<u8>)]) -> String {
    if o.is_empty() {
        return "    (dropped)\n".to_string();
    }
    o.iter().map(|(p, f)| format!("    port {p}: {}\n", hex(f))).collect()
}

/// A refusal reason without its position and numbers, so equal reasons count together.
fn reason_key(why: &str) -> String {
    let body = why.splitn(3, ':').nth(2).map(str::trim).unwrap_or(why);
    let mut out = String::new();
    let mut last_digit = false;
    for c in body.chars() {
        if c.is_ascii_digit() {
            if !last_digit {
                out.push('N');
            }
            last_digit = true;
        } else {
            out.push(c);
            last_digit = false;
        }
    }
    out
}

impl Report {
    pub fn new(verbose: bool) -> Report {
        Report {
            verbose,
            cases: 0,
            frames: 0,
            classes: BTreeMap::new(),
            refusals: BTreeMap::new(),
            unclassified: Vec::new(),
            errors: Vec::new(),
        }
    }

    pub fn verbose(&self) -> bool {
        self.verbose
    }

    pub fn case(&mut self, frames: usize) {
        self.cases += 1;
        self.frames += frames as u64;
    }

    pub fn refused(&mut self, rule: &str, why: &str) {
        let e = self.refusals.entry(reason_key(why)).or_insert((0, format!("{rule}  ->  {why}")));
        e.0 += 1;
    }

    pub fn refused_in_set(&mut self, rule: &str, why: &str) {
        self.refused(rule, &format!("(in its rule set) {why}"));
    }

    pub fn error(&mut self, seed: u64, e: String) {
        println!("ovsdiff: seed {seed}: error: {e}");
        self.errors.push(format!("seed {seed}: {e}"));
    }

    /// Same frames per port, another order. Known intended if ferrovs kept the order of
    /// each flow's frames (`flow_order_kept`): it may send a flow's frames before
    /// earlier frames of other flows that still wait for the slow path
    /// (docs/OVS-DIFFERENCES.md); a flow's own frames out of order is a failure.
    pub fn order_only(
        &mut self,
        seed: u64,
        rules: &[String],
        in_port: u32,
        order: &[String],
        frames: &[String],
        flow_order_kept: bool,
    ) {
        let text = format!(
            "seed {seed} (rerun: FERROVS_OVSDIFF_SEED={seed}), input port {in_port}: same frames per port, another \
             order\n  rules:\n    {}\n  {}\n  frames:\n    {}\n",
            rules.join("\n    "),
            order.join("\n  "),
            frames.join("\n    ")
        );
        let class = if flow_order_kept { Class::Known("cross-flow-output-order") } else { Class::Unclassified };
        self.note(class, rules.len() * 1000, text);
    }

    fn note(&mut self, class: Class, size: usize, text: String) {
        let seen = self.classes.entry(class).or_insert(Seen { count: 0, example: None });
        seen.count += 1;
        if seen.example.as_ref().is_none_or(|(s, _)| size < *s) {
            seen.example = Some((size, text.clone()));
        }
        if class == Class::Unclassified {
            self.unclassified.push(text.clone());
        }
        if self.verbose || (class == Class::Unclassified && self.unclassified.len() <= 20) {
            println!("ovsdiff: {class:?}\n{text}");
        }
    }

    pub fn difference(&mut self, class: Class, seed: u64, in_port: u32, desc: &str, d: &Difference) {
        let mut text = String::new();
        let _ = writeln!(text, "seed {seed} (rerun: FERROVS_OVSDIFF_SEED={seed}), input port {in_port}");
        let _ = writeln!(text, "  rules:\n    {}", d.rules.join("\n    "));
        let _ = writeln!(text, "  frame ({desc}):\n    {}", hex(d.frame));
        let _ = write!(text, "  OVS:\n{}  ferrovs:\n{}", outputs(&d.ovs), outputs(&d.ferrovs));
        self.note(class, d.rules.len() * 10_000 + d.frame.len(), text);
    }

    pub fn finish(&self, elapsed: Duration) -> Result<(), Failed> {
        let mins = elapsed.as_secs_f64() / 60.0;
        println!(
            "\novsdiff: {} cases, {} frames in {:.1} s ({:.1} cases/min, {:.0} frames/min)",
            self.cases,
            self.frames,
            elapsed.as_secs_f64(),
            self.cases as f64 / mins,
            self.frames as f64 / mins
        );
        for (class, seen) in &self.classes {
            let label = match class {
                Class::Known(n) => format!("known intended difference: {n}"),
                Class::Open(n) => format!("open divergence: {n}"),
                Class::Unclassified => "UNCLASSIFIED difference".to_string(),
            };
            println!("ovsdiff: {label}: {} frames", seen.count);
            if let Some((_, ex)) = &seen.example {
                println!(
                    "  smallest example:\n{}",
                    ex.lines().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n")
                );
            }
        }
        for (reason, (count, example)) in &self.refusals {
            println!("ovsdiff: ferrovs refuses what OVS accepts ({count}x): {reason}\n    e.g. {example}");
        }
        let mut problems = Vec::new();
        if !self.unclassified.is_empty() {
            problems.push(format!("{} unclassified differences (printed above)", self.unclassified.len()));
        }
        if !self.errors.is_empty() {
            problems.push(format!("{} cases failed to run: {}", self.errors.len(), self.errors.join("; ")));
        }
        if self.cases == 0 {
            problems.push("no case ran".to_string());
        }
        if problems.is_empty() { Ok(()) } else { Err(problems.join("\n").into()) }
    }
}
