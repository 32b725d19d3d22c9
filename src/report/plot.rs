//! Figures (plotters), each written as SVG and PNG: rate curves over time
//! (the papers' Figures 2-5) with detections shaded, and the scatter of total
//! vs unresolved-FQDN rate with its least-squares line and R² (Figure 6).
//!
//! Text is drawn with DejaVu Sans from the `dejavu` crate, registered with
//! plotters' `ab_glyph` backend: no system fonts are needed.

use std::path::Path;
use std::sync::Once;

use anyhow::{Result, anyhow};
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::detect::window::r_squared;

const SIZE: (u32, u32) = (1000, 560);
const FONT: &str = "sans-serif";

static FONTS: Once = Once::new();

fn register_fonts() {
    FONTS.call_once(|| {
        // The bytes are a valid TrueType font shipped by the crate.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
        let _ = plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold());
    });
}

/// One curve: a name for the legend and (x, y) points.
pub struct Series {
    pub name: String,
    pub color: RGBColor,
    pub points: Vec<(f64, f64)>,
}

/// A shaded time span (a detection) with its legend name.
pub struct Span {
    pub name: String,
    pub from: f64,
    pub to: f64,
}

pub struct TimeFigure {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x_range: (f64, f64),
    pub series: Vec<Series>,
    pub spans: Vec<Span>,
}

pub struct ScatterFigure {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub points: Vec<(f64, f64)>,
}

/// Least-squares line y = a + b x and its R²; None when x or y is constant.
pub fn fit(points: &[(f64, f64)]) -> Option<(f64, f64, f64)> {
    let r2 = r_squared(points.iter().copied())?;
    let n = points.len() as f64;
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), &(x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let (sxy, sxx) = points.iter().fold((0.0, 0.0), |(a, b), &(x, y)| {
        (a + (x - mx) * (y - my), b + (x - mx) * (x - mx))
    });
    let slope = sxy / sxx;
    Some((my - slope * mx, slope, r2))
}

/// Colours of the detection spans, by rule name.
fn span_color(rule: &str) -> RGBColor {
    match rule {
        "spam_relay" => RGBColor(230, 80, 60),
        "backscatter" => RGBColor(150, 80, 200),
        "dns_query_flood" => RGBColor(240, 160, 40),
        "smtp_alpha" => RGBColor(60, 170, 90),
        "smtp_user_unknown_flood" => RGBColor(40, 150, 200),
        "smtp_outbound_flood" => RGBColor(180, 150, 40),
        _ => RGBColor(128, 128, 128),
    }
}

fn upper(max: f64) -> f64 {
    if max > 0.0 { max * 1.12 } else { 1.0 }
}

type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// The titled, labelled axes every figure shares.
fn axes<'a, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    title: &str,
    (x, y): (std::ops::Range<f64>, std::ops::Range<f64>),
    x_label: &str,
    y_label: &str,
) -> Result<Chart<'a, DB>>
where
    DB::ErrorType: 'static,
{
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing: {e}");
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 22))
        .margin(12)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(x, y)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 16))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(e)?;
    Ok(chart)
}

/// The legend in the upper left, then the file is written.
fn legend_and_present<'a, DB: DrawingBackend + 'a>(
    mut chart: Chart<'a, DB>,
    root: &DrawingArea<DB, Shift>,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing: {e}");
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(e)?;
    root.present().map_err(e)?;
    Ok(())
}

fn draw_time<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, f: &TimeFigure) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing: {e}");
    root.fill(&WHITE).map_err(e)?;
    let y_max = f
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    let (x0, x1) = if f.x_range.1 > f.x_range.0 {
        f.x_range
    } else {
        (f.x_range.0, f.x_range.0 + 1.0)
    };
    // Head room above the curves for the legend.
    let y1 = upper(y_max) * 1.35;
    let mut chart = axes(&root, &f.title, (x0..x1, 0.0..y1), &f.x_label, &f.y_label)?;
    let mut named: Vec<&str> = Vec::new();
    for s in &f.spans {
        let c = span_color(&s.name);
        let rect = Rectangle::new(
            [(s.from, 0.0), (s.to.max(s.from), y1)],
            c.mix(0.13).filled(),
        );
        let a = chart.draw_series(std::iter::once(rect)).map_err(e)?;
        if !named.contains(&s.name.as_str()) {
            named.push(&s.name);
            a.label(format!("detection: {}", s.name))
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 6), (x + 16, y + 6)], c.mix(0.35).filled())
                });
        }
    }
    let shown: Vec<&Series> = f
        .series
        .iter()
        .filter(|s| s.points.iter().any(|p| p.1 > 0.0))
        .collect();
    let shown = if shown.is_empty() {
        f.series.iter().take(1).collect()
    } else {
        shown
    };
    for s in shown {
        let c = s.color;
        chart
            .draw_series(LineSeries::new(s.points.iter().copied(), c.stroke_width(2)))
            .map_err(e)?
            .label(&s.name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], c.stroke_width(2)));
    }
    legend_and_present(chart, &root)
}

fn draw_scatter<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, f: &ScatterFigure) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing: {e}");
    root.fill(&WHITE).map_err(e)?;
    let x1 = upper(f.points.iter().map(|p| p.0).fold(0.0, f64::max));
    let y1 = upper(f.points.iter().map(|p| p.1).fold(0.0, f64::max));
    let fitted = fit(&f.points);
    let title = match fitted {
        Some((_, _, r2)) => format!("{} (R² = {r2:.4})", f.title),
        None => format!("{} (R² undefined: a constant axis)", f.title),
    };
    let mut chart = axes(&root, &title, (0.0..x1, 0.0..y1), &f.x_label, &f.y_label)?;
    let blue = RGBColor(40, 90, 200);
    chart
        .draw_series(
            f.points
                .iter()
                .map(|&p| Circle::new(p, 3, blue.mix(0.7).filled())),
        )
        .map_err(e)?
        .label("one time bin")
        .legend(move |(x, y)| Circle::new((x + 8, y), 3, blue.filled()));
    if let Some((a, b, r2)) = fitted {
        let red = RGBColor(210, 50, 40);
        chart
            .draw_series(LineSeries::new(
                [(0.0, a), (x1, a + b * x1)],
                red.stroke_width(2),
            ))
            .map_err(e)?
            .label(format!("fit: y = {a:.3} + {b:.3} x, R² = {r2:.4}"))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], red.stroke_width(2)));
    }
    legend_and_present(chart, &root)
}

/// Writes `DIR/STEM.svg` and `DIR/STEM.png`.
pub fn write_time(dir: &Path, stem: &str, f: &TimeFigure) -> Result<()> {
    register_fonts();
    let svg = dir.join(format!("{stem}.svg"));
    draw_time(SVGBackend::new(&svg, SIZE).into_drawing_area(), f)?;
    let png = dir.join(format!("{stem}.png"));
    draw_time(BitMapBackend::new(&png, SIZE).into_drawing_area(), f)
}

/// Writes `DIR/STEM.svg` and `DIR/STEM.png`.
pub fn write_scatter(dir: &Path, stem: &str, f: &ScatterFigure) -> Result<()> {
    register_fonts();
    let svg = dir.join(format!("{stem}.svg"));
    draw_scatter(SVGBackend::new(&svg, SIZE).into_drawing_area(), f)?;
    let png = dir.join(format!("{stem}.png"));
    draw_scatter(BitMapBackend::new(&png, SIZE).into_drawing_area(), f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_of_a_line() {
        let pts: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, 1.0 + 0.5 * i as f64)).collect();
        let (a, b, r2) = fit(&pts).unwrap();
        assert!((a - 1.0).abs() < 1e-9 && (b - 0.5).abs() < 1e-9 && (r2 - 1.0).abs() < 1e-9);
    }
}
