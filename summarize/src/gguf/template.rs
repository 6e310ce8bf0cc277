//! Chat templates: how a conversation becomes the prompt a chat model was trained on.
//!
//! Not a Jinja engine: the two template families Llama-family GGUF files ship (ChatML and
//! Llama 3) are recognised from `tokenizer.chat_template` (or, without one, from which special
//! tokens the vocabulary has) and rendered in code. A rendered prompt is a list of [`Part`]s so
//! that the template's markers are tokenized with special tokens on and the messages' text with
//! them off.

use crate::{ChatMessage, ChatRole};

use super::tokenizer::{Specials, Tokenizer};

/// A piece of a rendered prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Written by the template: special tokens are recognised.
    Marker(&'static str),
    /// Message text (and roles): special tokens are never recognised.
    Text(String),
}

/// A chat template family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatTemplate {
    /// `<|im_start|>role\ncontent<|im_end|>\n` (SmolLM2, Qwen, ...). `default_system` is the
    /// system prompt the template inserts when a conversation has none (SmolLM2's does).
    ChatMl { default_system: Option<String> },
    /// `<|begin_of_text|><|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>`.
    Llama3,
}

impl ChatTemplate {
    /// The template for a model, from its `tokenizer.chat_template` or, without one, from the
    /// special tokens its vocabulary has.
    pub fn detect(chat_template: Option<&str>, tokenizer: &Tokenizer) -> Option<Self> {
        if let Some(t) = chat_template {
            if t.contains("<|im_start|>") {
                return Some(Self::ChatMl {
                    default_system: chatml_default_system(t),
                });
            }
            if t.contains("<|start_header_id|>") {
                return Some(Self::Llama3);
            }
        }
        if tokenizer.token_id("<|im_start|>").is_some()
            && tokenizer.token_id("<|im_end|>").is_some()
        {
            return Some(Self::ChatMl {
                default_system: None,
            });
        }
        if tokenizer.token_id("<|start_header_id|>").is_some()
            && tokenizer.token_id("<|eot_id|>").is_some()
        {
            return Some(Self::Llama3);
        }
        None
    }

    /// `chatml` or `llama3`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::ChatMl { .. } => "chatml",
            Self::Llama3 => "llama3",
        }
    }

    /// The special tokens this template's markers need.
    pub fn markers(&self) -> &'static [&'static str] {
        match self {
            Self::ChatMl { .. } => &["<|im_start|>", "<|im_end|>"],
            Self::Llama3 => &[
                "<|begin_of_text|>",
                "<|start_header_id|>",
                "<|end_header_id|>",
                "<|eot_id|>",
            ],
        }
    }

    /// Tokens that end the assistant's turn (besides the model's EOS).
    pub fn end_of_turn(&self) -> &'static [&'static str] {
        match self {
            Self::ChatMl { .. } => &["<|im_end|>"],
            Self::Llama3 => &["<|eot_id|>", "<|eom_id|>", "<|end_of_text|>"],
        }
    }

    /// The prompt for `messages`, ending with the generation prompt (the assistant's header).
    pub fn render(&self, messages: &[ChatMessage]) -> Vec<Part> {
        let mut parts = Vec::with_capacity(messages.len() * 4 + 4);
        match self {
            Self::ChatMl { default_system } => {
                let has_system = messages.first().map(|m| m.role) == Some(ChatRole::System);
                if let (false, Some(system)) = (has_system, default_system) {
                    chatml_turn(&mut parts, "system", system);
                }
                for m in messages {
                    chatml_turn(&mut parts, role_name(m.role), &m.content);
                }
                parts.push(Part::Marker("<|im_start|>"));
                parts.push(Part::Text("assistant\n".to_owned()));
            }
            Self::Llama3 => {
                parts.push(Part::Marker("<|begin_of_text|>"));
                for m in messages {
                    llama3_header(&mut parts, role_name(m.role));
                    parts.push(Part::Text(format!("\n\n{}", m.content.trim())));
                    parts.push(Part::Marker("<|eot_id|>"));
                }
                llama3_header(&mut parts, "assistant");
                parts.push(Part::Text("\n\n".to_owned()));
            }
        }
        parts
    }

    /// The rendered prompt as text (for logs and tests).
    pub fn render_text(&self, messages: &[ChatMessage]) -> String {
        self.render(messages)
            .into_iter()
            .map(|p| match p {
                Part::Marker(m) => m.to_owned(),
                Part::Text(t) => t,
            })
            .collect()
    }

    /// The prompt's tokens: markers with special tokens on, text with them off.
    pub fn encode(&self, messages: &[ChatMessage], tokenizer: &Tokenizer) -> Vec<u32> {
        let mut out = Vec::new();
        for part in self.render(messages) {
            match part {
                Part::Marker(m) => tokenizer.encode_into(m, Specials::Allow, &mut out),
                Part::Text(t) => tokenizer.encode_into(&t, Specials::Deny, &mut out),
            }
        }
        out
    }
}

fn role_name(role: ChatRole) -> &'static str {
    match role {
        ChatRole::System => "system",
        ChatRole::User => "user",
        ChatRole::Assistant => "assistant",
    }
}

fn chatml_turn(parts: &mut Vec<Part>, role: &str, content: &str) {
    parts.push(Part::Marker("<|im_start|>"));
    parts.push(Part::Text(format!("{role}\n{content}")));
    parts.push(Part::Marker("<|im_end|>"));
    parts.push(Part::Text("\n".to_owned()));
}

fn llama3_header(parts: &mut Vec<Part>, role: &str) {
    parts.push(Part::Marker("<|start_header_id|>"));
    parts.push(Part::Text(role.to_owned()));
    parts.push(Part::Marker("<|end_header_id|>"));
}

/// The system prompt a ChatML template inserts when the conversation has none, as SmolLM2's
/// does: `{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n...'`.
fn chatml_default_system(template: &str) -> Option<String> {
    let condition = template.find("messages[0]['role'] != 'system'")?;
    let rest = &template[condition..];
    let start = rest.find("<|im_start|>system\\n")? + "<|im_start|>system\\n".len();
    let rest = &rest[start..];
    let end = rest.find("<|im_end|>")?;
    // The template is Jinja source: its string literal spells a newline `\n`.
    Some(rest[..end].replace("\\n", "\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_smollm2s_default_system_prompt() {
        let t = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
        assert_eq!(
            chatml_default_system(t).as_deref(),
            Some("You are a helpful AI assistant named SmolLM, trained by Hugging Face")
        );
        assert_eq!(chatml_default_system("{{'<|im_start|>' + role}}"), None);
    }

    #[test]
    fn renders_chatml() {
        let t = ChatTemplate::ChatMl {
            default_system: Some("Be brief.".into()),
        };
        assert_eq!(
            t.render_text(&[ChatMessage::user("Hi")]),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        assert_eq!(
            t.render_text(&[ChatMessage::system("S"), ChatMessage::user("Hi")]),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn renders_llama3() {
        assert_eq!(
            ChatTemplate::Llama3
                .render_text(&[ChatMessage::system("S"), ChatMessage::user(" Hi ")]),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>\
             <|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>\
             <|start_header_id|>assistant<|end_header_id|>\n\n"
        );
    }
}
