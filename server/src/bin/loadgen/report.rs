//! The figures of a run: printed as a table next to their targets, and written as JSON.

use serde::Serialize;

/// Whether bigger or smaller is better for a figure.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Goal {
    AtLeast,
    AtMost,
}

/// One measured figure.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub scenario: String,
    pub figure: String,
    pub value: f64,
    pub unit: String,
    /// The target, if the figure has one.
    pub target: Option<f64>,
    pub goal: Goal,
    /// Whether the run's correctness checks held for this scenario.
    pub verified: bool,
    /// What the checks found, in words.
    pub check: String,
}

impl Figure {
    pub fn met(&self) -> Option<bool> {
        self.target.map(|target| match self.goal {
            Goal::AtLeast => self.value >= target,
            Goal::AtMost => self.value <= target,
        })
    }
}

fn number(value: f64, unit: &str) -> String {
    let digits = if value >= 100.0 || value.fract() == 0.0 {
        0
    } else if value < 1.0 {
        3
    } else {
        1
    };
    format!("{value:.digits$} {unit}")
}

/// The table of figures, one row each.
pub fn table(figures: &[Figure]) -> String {
    let mut out = String::from(
        "| scenario | figure | measured | target | met | checks |\n|---|---|---|---|---|---|\n",
    );
    for figure in figures {
        let target = figure.target.map_or_else(
            || "—".to_owned(),
            |target| {
                let sign = match figure.goal {
                    Goal::AtLeast => "≥",
                    Goal::AtMost => "≤",
                };
                format!("{sign} {}", number(target, &figure.unit))
            },
        );
        let met = match figure.met() {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "—",
        };
        let checks = if figure.verified {
            format!("ok: {}", figure.check)
        } else {
            format!("FAILED: {}", figure.check)
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            figure.scenario,
            figure.figure,
            number(figure.value, &figure.unit),
            target,
            met,
            checks
        ));
    }
    out
}
