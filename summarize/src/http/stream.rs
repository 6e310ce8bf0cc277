//! Decoding a streamed completion as it arrives: server-sent events (OpenAI-compatible) and
//! newline-delimited JSON (Ollama), split anywhere across network chunks.

use serde_json::Value;
use tokio::time::Instant;

use super::Api;
use super::errors::{error_message, excerpt};
use super::wire::{OllamaChunk, OpenAiChunk, finish_reason};
use crate::FinishReason;

#[derive(Debug, PartialEq)]
pub(super) enum StreamError {
    /// Not the protocol.
    Invalid(String),
    /// The server reported an error in the stream.
    Server(String),
}

/// The completion as it streams in.
pub(super) struct StreamState {
    api: Api,
    sse: SseDecoder,
    lines: LineSplitter,
    pub(super) text: String,
    /// Content pieces received (non-empty deltas).
    pub(super) pieces: usize,
    pub(super) first_token_at: Option<Instant>,
    pub(super) finish_reason: Option<FinishReason>,
    pub(super) prompt_tokens: Option<usize>,
    pub(super) completion_tokens: Option<usize>,
}

impl StreamState {
    pub(super) fn new(api: Api) -> Self {
        Self {
            api,
            sse: SseDecoder::default(),
            lines: LineSplitter::default(),
            text: String::new(),
            pieces: 0,
            first_token_at: None,
            finish_reason: None,
            prompt_tokens: None,
            completion_tokens: None,
        }
    }

    /// Takes in bytes off the wire; `Ok(true)` once the completion is complete.
    pub(super) fn push(&mut self, bytes: &[u8]) -> Result<bool, StreamError> {
        self.lines.push(bytes);
        self.drain(false)
    }

    /// The response ended; `Ok(true)` as the stream is over either way.
    pub(super) fn finish(&mut self) -> Result<bool, StreamError> {
        self.drain(true)?;
        Ok(true)
    }

    fn drain(&mut self, at_end: bool) -> Result<bool, StreamError> {
        while let Some(line) = self.lines.next_line(at_end) {
            let done = match self.api {
                Api::OpenAi => match self.sse.line(&line) {
                    Some(event) => self.openai_event(event)?,
                    None => false,
                },
                Api::Ollama => self.ollama_line(&line)?,
            };
            if done {
                return Ok(true);
            }
        }
        if at_end && self.api == Api::OpenAi {
            // A last event without its blank line.
            if let Some(event) = self.sse.line("") {
                return self.openai_event(event);
            }
        }
        Ok(false)
    }

    fn content(&mut self, piece: &str) {
        if !piece.is_empty() {
            if self.first_token_at.is_none() {
                self.first_token_at = Some(Instant::now());
            }
            self.pieces += 1;
            self.text.push_str(piece);
        }
    }

    fn openai_event(&mut self, event: SseEvent) -> Result<bool, StreamError> {
        if event.data.trim() == "[DONE]" {
            return Ok(true);
        }
        let value: Value = serde_json::from_str(&event.data).map_err(|e| {
            StreamError::Invalid(format!(
                "an event that is not JSON ({e}): {}",
                excerpt(&event.data)
            ))
        })?;
        if event.event.as_deref() == Some("error")
            || value.get("error").is_some_and(|e| !e.is_null())
        {
            return Err(StreamError::Server(
                error_message(&value).unwrap_or_else(|| excerpt(&event.data)),
            ));
        }
        let chunk: OpenAiChunk = serde_json::from_value(value).map_err(|e| {
            StreamError::Invalid(format!(
                "an unexpected chunk ({e}): {}",
                excerpt(&event.data)
            ))
        })?;
        if let Some(choice) = chunk.choices.into_iter().next() {
            if let Some(piece) = choice.delta.and_then(|d| d.content) {
                self.content(&piece);
            }
            if let Some(reason) = choice.finish_reason {
                self.finish_reason = Some(finish_reason(&reason));
            }
        }
        if let Some(usage) = chunk.usage {
            self.prompt_tokens = usage.prompt_tokens.or(self.prompt_tokens);
            self.completion_tokens = usage.completion_tokens.or(self.completion_tokens);
        }
        Ok(false)
    }

    fn ollama_line(&mut self, line: &str) -> Result<bool, StreamError> {
        let line = line.trim();
        if line.is_empty() {
            return Ok(false);
        }
        let value: Value = serde_json::from_str(line).map_err(|e| {
            StreamError::Invalid(format!("a line that is not JSON ({e}): {}", excerpt(line)))
        })?;
        if value.get("error").is_some_and(|e| !e.is_null()) {
            return Err(StreamError::Server(
                error_message(&value).unwrap_or_else(|| excerpt(line)),
            ));
        }
        let chunk: OllamaChunk = serde_json::from_value(value).map_err(|e| {
            StreamError::Invalid(format!("an unexpected line ({e}): {}", excerpt(line)))
        })?;
        if let Some(piece) = chunk.message.and_then(|m| m.content) {
            self.content(&piece);
        }
        if chunk.done {
            self.finish_reason = Some(
                chunk
                    .done_reason
                    .as_deref()
                    .map_or(FinishReason::Stop, finish_reason),
            );
            self.prompt_tokens = chunk.prompt_eval_count;
            self.completion_tokens = chunk.eval_count;
            return Ok(true);
        }
        Ok(false)
    }
}

/// Splits bytes into lines ended by `\n`, `\r\n` or `\r`, across chunk boundaries (a multi-byte
/// character split between chunks is decoded whole).
#[derive(Default)]
struct LineSplitter {
    buffer: Vec<u8>,
    /// Where to resume looking for a line end.
    scanned: usize,
}

impl LineSplitter {
    fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete line; at the end of the stream also the unterminated rest.
    fn next_line(&mut self, at_end: bool) -> Option<String> {
        let found = self.buffer[self.scanned..]
            .iter()
            .position(|&b| b == b'\n' || b == b'\r')
            .map(|i| i + self.scanned);
        let (line_end, next) = match found {
            Some(i) if self.buffer[i] == b'\n' => (i, i + 1),
            Some(i) => match self.buffer.get(i + 1) {
                Some(b'\n') => (i, i + 2),
                Some(_) => (i, i + 1),
                // A `\r` at the end: wait to see whether `\n` follows.
                None if at_end => (i, i + 1),
                None => {
                    self.scanned = i;
                    return None;
                }
            },
            None if at_end && !self.buffer.is_empty() => (self.buffer.len(), self.buffer.len()),
            None => {
                self.scanned = self.buffer.len();
                return None;
            }
        };
        let line = String::from_utf8_lossy(&self.buffer[..line_end]).into_owned();
        self.buffer.drain(..next);
        self.scanned = 0;
        Some(line)
    }
}

/// One server-sent event.
#[derive(Debug, PartialEq)]
struct SseEvent {
    event: Option<String>,
    data: String,
}

/// Assembles server-sent events from lines (the `text/event-stream` rules: `field: value` lines,
/// `:` comments, a blank line ends an event; `data` lines join with `\n`).
#[derive(Default)]
struct SseDecoder {
    event: Option<String>,
    data: Option<String>,
}

impl SseDecoder {
    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            let data = self.data.take();
            let event = self.event.take();
            return data.map(|data| SseEvent { event, data });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            "event" => self.event = Some(value.to_string()),
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut lines = LineSplitter::default();
        let mut sse = SseDecoder::default();
        let mut out = Vec::new();
        for chunk in chunks {
            lines.push(chunk);
            while let Some(line) = lines.next_line(false) {
                out.extend(sse.line(&line));
            }
        }
        while let Some(line) = lines.next_line(true) {
            out.extend(sse.line(&line));
        }
        out.extend(sse.line(""));
        out
    }

    fn data(events: &[SseEvent]) -> Vec<&str> {
        events.iter().map(|e| e.data.as_str()).collect()
    }

    #[test]
    fn sse_events_split_anywhere_decode_the_same() {
        let wire = ": keep-alive\r\n\r\ndata: {\"a\":\"é\"}\r\n\r\nevent: error\ndata: x\ndata: y\n\ndata:z\r\rdata: [DONE]\n\n";
        let whole = events(&[wire.as_bytes()]);
        assert_eq!(data(&whole), ["{\"a\":\"é\"}", "x\ny", "z", "[DONE]"]);
        assert_eq!(whole[1].event.as_deref(), Some("error"));
        // Every split point, including inside `é` and between `\r` and `\n`.
        let bytes = wire.as_bytes();
        for cut in 0..bytes.len() {
            let split = events(&[&bytes[..cut], &bytes[cut..]]);
            assert_eq!(split, whole, "cut at {cut}");
        }
        let single: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(events(&single), whole);
    }

    #[test]
    fn the_last_event_without_a_blank_line_still_counts() {
        assert_eq!(data(&events(&[b"data: [DONE]"])), ["[DONE]"]);
    }

    #[test]
    fn openai_stream_accumulates_content_finish_and_usage() {
        let mut state = StreamState::new(Api::OpenAi);
        let wire = concat!(
            "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"Hello\"},\"finish_reason\":null}],\"usage\":null}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\" world\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"length\"}]}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2}}\n\n",
            "data: [DONE]\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"ignored\"}}]}\n\n",
        );
        assert_eq!(state.push(wire.as_bytes()), Ok(true));
        assert_eq!(state.text, "Hello world");
        assert_eq!(state.pieces, 2);
        assert_eq!(state.finish_reason, Some(FinishReason::Length));
        assert_eq!(state.prompt_tokens, Some(7));
        assert_eq!(state.completion_tokens, Some(2));
    }

    #[test]
    fn errors_in_the_stream_are_reported() {
        let mut state = StreamState::new(Api::OpenAi);
        assert_eq!(
            state.push(b"data: {\"error\":{\"message\":\"out of memory\"}}\n\n"),
            Err(StreamError::Server("out of memory".into()))
        );
        let mut state = StreamState::new(Api::OpenAi);
        assert!(matches!(
            state.push(b"data: nope\n\n"),
            Err(StreamError::Invalid(_))
        ));
        let mut state = StreamState::new(Api::Ollama);
        assert_eq!(
            state.push(b"{\"error\":\"model not loaded\"}\n"),
            Err(StreamError::Server("model not loaded".into()))
        );
    }

    #[test]
    fn ollama_lines_across_chunks() {
        let mut state = StreamState::new(Api::Ollama);
        let wire = "{\"message\":{\"role\":\"assistant\",\"content\":\"Hé\"},\"done\":false}\r\n\n{\"message\":{\"role\":\"assistant\",\"content\":\"llo\"},\"done\":false}\n{\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\",\"prompt_eval_count\":5,\"eval_count\":2}";
        let bytes = wire.as_bytes();
        for cut in 0..bytes.len() {
            let mut state2 = StreamState::new(Api::Ollama);
            let first = state2.push(&bytes[..cut]).unwrap();
            let done = first || state2.push(&bytes[cut..]).unwrap() || state2.finish().unwrap();
            assert!(done);
            assert_eq!(state2.text, "Héllo", "cut at {cut}");
            assert_eq!(state2.finish_reason, Some(FinishReason::Stop));
            assert_eq!(state2.prompt_tokens, Some(5));
            assert_eq!(state2.completion_tokens, Some(2));
        }
        assert_eq!(state.push(bytes), Ok(false));
        assert_eq!(state.finish(), Ok(true));
        assert_eq!(state.text, "Héllo");
    }
}
