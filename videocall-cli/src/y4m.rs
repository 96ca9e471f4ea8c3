//! YUV4MPEG2 (`.y4m`) files of I420 pictures: what `receive` records, playable by ffmpeg/mpv.

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;

use crate::pattern::I420;

/// Writes pictures of one size to a `.y4m` file.
#[derive(Debug)]
pub struct Y4mWriter {
    out: BufWriter<std::fs::File>,
    /// Picture size.
    pub size: (usize, usize),
    /// Pictures written.
    pub frames: u64,
}

impl Y4mWriter {
    /// Creates `path` for pictures of `width`×`height` at `fps`.
    pub fn create(path: &Path, width: usize, height: usize, fps: u32) -> std::io::Result<Self> {
        let mut out = BufWriter::new(std::fs::File::create(path)?);
        writeln!(
            out,
            "YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg"
        )?;
        Ok(Self {
            out,
            size: (width, height),
            frames: 0,
        })
    }

    /// Appends one picture of this writer's size.
    pub fn write(&mut self, picture: &I420) -> std::io::Result<()> {
        if (picture.width, picture.height) != self.size
            || picture.data.len() != picture.width * picture.height * 3 / 2
        {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "picture size differs from the file's",
            ));
        }
        self.out.write_all(b"FRAME\n")?;
        self.out.write_all(&picture.data)?;
        self.frames += 1;
        Ok(())
    }

    /// Flushes to disk.
    pub fn finish(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Reads every picture of a `.y4m` file written by [`Y4mWriter`].
pub fn read_all(path: &Path) -> std::io::Result<Vec<I420>> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let mut input = BufReader::new(std::fs::File::open(path)?);
    let mut header = String::new();
    input.read_line(&mut header)?;
    if !header.starts_with("YUV4MPEG2 ") {
        return Err(bad("not a y4m file"));
    }
    let field = |tag: char| {
        header
            .split_whitespace()
            .find_map(|f| f.strip_prefix(tag))
            .and_then(|v| v.parse::<usize>().ok())
    };
    let (width, height) = (
        field('W').ok_or(bad("no width"))?,
        field('H').ok_or(bad("no height"))?,
    );
    let size = width * height * 3 / 2;
    let mut frames = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            return Ok(frames);
        }
        if !line.starts_with("FRAME") {
            return Err(bad("frame header expected"));
        }
        let mut data = vec![0u8; size];
        input.read_exact(&mut data)?;
        frames.push(I420 {
            width,
            height,
            data,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern;

    #[test]
    fn pictures_written_are_read_back_unchanged() {
        let dir = std::env::temp_dir().join(format!("y4m-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("a.y4m");
        let pictures: Vec<I420> = (0..3)
            .map(|n| pattern::frame(192, 64, n).expect("valid size"))
            .collect();
        let mut writer = Y4mWriter::create(&path, 192, 64, 30).expect("file created");
        for p in &pictures {
            writer.write(p).expect("written");
        }
        writer.finish().expect("flushed");
        assert_eq!(read_all(&path).expect("readable"), pictures);
        let _ = std::fs::remove_dir_all(dir);
    }
}
