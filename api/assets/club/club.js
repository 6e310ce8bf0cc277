// The book club page: the current round (nominations, standings, the member's ballot) and the
// discussions, kept up to date by the club's live WebSocket. Plain DOM APIs only; every piece of
// text from the server goes in through textContent, never parsed as markup.
(function () {
  "use strict";

  var SESSION_KEY = "quire.club.session";
  var POSITION_KEY = "quire.club.position";
  var BACKOFF_MIN_MS = 500;
  var BACKOFF_MAX_MS = 30000;
  // A connection that stayed up this long resets the backoff.
  var STABLE_MS = 5000;

  var clubId = (function () {
    var id = new URLSearchParams(location.search).get("club");
    return id && /^[A-Za-z0-9_-]{1,100}$/.test(id) ? id : "default";
  })();

  var state = {
    session: loadSession(), // {token, userId, username}
    round: null, // the last round snapshot
    standings: null, // [{book_id, title, votes}] or null when hidden/unknown
    resultsHidden: false,
    titles: {}, // book id -> title, from nominations and standings
    ballot: [], // the signed-in member's book ids
    // Bumped by every live standings update, so an older snapshot does not overwrite a newer one.
    standingsSeq: 0,
    threads: [], // [{thread_id, title, author, created_at, replies: [...]}]
    threadIndex: {}, // thread id -> thread
    replyIds: {}, // reply id -> the reply, to apply each reply once
    authors: {}, // user id -> username, learned from the discussions
    position: loadPosition(),
    socket: null,
    attempt: 0,
    reconnectTimer: null,
    openedAt: 0,
  };

  function $(id) {
    return document.getElementById(id);
  }

  // --- DOM helpers: elements with text, never markup -----------------------------------------

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function timeEl(iso) {
    var node = el("time");
    if (!iso) return node;
    node.dateTime = String(iso);
    var date = new Date(iso);
    node.textContent = isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
    return node;
  }

  function say(id, text, kind) {
    var node = $(id);
    node.textContent = text || "";
    node.classList.remove("error", "ok");
    if (kind) node.classList.add(kind);
  }

  // --- Session and position ------------------------------------------------------------------

  function loadSession() {
    try {
      var raw = sessionStorage.getItem(SESSION_KEY);
      var session = raw ? JSON.parse(raw) : null;
      return session && typeof session.token === "string" ? session : null;
    } catch (e) {
      return null;
    }
  }

  function saveSession(session) {
    state.session = session;
    try {
      if (session) sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
      else sessionStorage.removeItem(SESSION_KEY);
    } catch (e) {
      /* storage may be unavailable (private mode); the session then lasts as long as the page */
    }
  }

  function loadPosition() {
    try {
      var raw = sessionStorage.getItem(POSITION_KEY + ":" + clubId);
      var n = raw === null ? NaN : Number(raw);
      return Number.isSafeInteger(n) && n >= 0 ? n : null;
    } catch (e) {
      return null;
    }
  }

  function notePosition(position) {
    var n = Number(position);
    if (!Number.isSafeInteger(n) || n < 0) return;
    if (state.position === null || n > state.position) {
      state.position = n;
      document.body.dataset.livePosition = String(n);
      try {
        sessionStorage.setItem(POSITION_KEY + ":" + clubId, String(n));
      } catch (e) {
        /* see saveSession */
      }
    }
  }

  // --- HTTP ----------------------------------------------------------------------------------

  function api(method, path, body, consistencyToken) {
    var headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (state.session) headers.Authorization = "Bearer " + state.session.token;
    if (consistencyToken !== undefined && consistencyToken !== null) {
      headers["Consistency-Token"] = String(consistencyToken);
    }
    return fetch(path, {
      method: method,
      headers: headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    }).then(function (response) {
      var token = response.headers.get("Consistency-Token");
      return response.text().then(function (text) {
        var data = null;
        if (text) {
          try {
            data = JSON.parse(text);
          } catch (e) {
            data = null;
          }
        }
        if (response.status === 401 && state.session) {
          // The token expired or was revoked.
          signedOut("Your session ended; please sign in again.");
        }
        if (!response.ok) {
          var message =
            (data && (data.detail || data.title || data.message || data.error)) ||
            response.status + " " + response.statusText;
          var error = new Error(String(message));
          error.status = response.status;
          error.data = data;
          throw error;
        }
        return { data: data, status: response.status, consistencyToken: token };
      });
    });
  }

  // --- The round -----------------------------------------------------------------------------

  function loadRound(consistencyToken) {
    var seq = state.standingsSeq;
    $("round").setAttribute("aria-busy", "true");
    return api("GET", "/clubs/" + encodeURIComponent(clubId) + "/rounds/current", undefined, consistencyToken)
      .then(function (result) {
        applyRound(result.data || {}, seq === state.standingsSeq);
      })
      .catch(function (error) {
        if (error.status === 404) {
          state.round = null;
          state.standings = null;
          state.ballot = [];
          renderRound();
          $("round-summary").textContent = "No round is open right now.";
        } else {
          $("round-summary").textContent = "Could not load the round: " + error.message;
        }
      })
      .then(function () {
        $("round").setAttribute("aria-busy", "false");
      });
  }

  function applyRound(round, takeStandings) {
    state.round = round;
    (round.nominations || []).forEach(function (n) {
      if (n && n.book_id && n.title) state.titles[n.book_id] = n.title;
    });
    if (takeStandings) {
      if (round.results_hidden) {
        state.resultsHidden = true;
        state.standings = null;
      } else {
        state.resultsHidden = false;
        state.standings = Array.isArray(round.standings) ? round.standings.slice() : [];
      }
    }
    state.ballot = Array.isArray(round.your_ballot) ? round.your_ballot.slice() : [];
    renderRound();
  }

  function renderRound() {
    var round = state.round;
    var details = $("round-details");
    clear(details);
    if (!round) {
      details.hidden = true;
      clear($("nominations"));
      renderStandings();
      renderBallot();
      return;
    }
    var method = { plurality: "one vote per member", ranked_choice: "ranked choice" }[round.method] || round.method;
    $("round-summary").textContent =
      (round.status === "open" ? "Voting is open" : round.status === "closed" ? "This round has closed" : "Round") +
      (method ? " · " + method : "") +
      ".";
    [
      ["Status", round.status],
      ["Nominations close", round.nominations_close],
      ["Voting closes", round.voting_closes],
      ["Winner", round.winner ? titleOf(winnerId(round.winner)) : null],
      ["Tie-break", round.tie_break],
    ].forEach(function (pair) {
      if (pair[1] === null || pair[1] === undefined || pair[1] === "") return;
      details.appendChild(el("dt", null, pair[0]));
      var dd = el("dd");
      if (/closes?$/.test(pair[0])) dd.appendChild(timeEl(pair[1]));
      else dd.textContent = typeof pair[1] === "object" ? JSON.stringify(pair[1]) : String(pair[1]);
      details.appendChild(dd);
    });
    details.hidden = !details.firstChild;

    var list = $("nominations");
    clear(list);
    var nominations = round.nominations || [];
    if (!nominations.length) list.appendChild(el("li", "muted", "No nominations yet."));
    nominations.forEach(function (n) {
      var li = el("li");
      li.dataset.bookId = n.book_id;
      var text = el("span", "nomination-text");
      text.appendChild(el("span", "nomination-title", n.title || n.book_id));
      // Who nominated is shown by name only when the page knows it (ids mean nothing to people).
      var by = n.nominated_by && (state.session && n.nominated_by === state.session.userId ? "you" : state.authors[n.nominated_by]);
      if (by) text.appendChild(el("span", "nomination-by", "nominated by " + by));
      li.appendChild(text);
      if (state.ballot.indexOf(n.book_id) >= 0) li.appendChild(el("span", "voted-badge", "Your vote"));
      if (state.session) {
        var button = el("button", "vote-button", "Vote");
        button.type = "button";
        button.dataset.bookId = n.book_id;
        button.setAttribute("aria-label", "Vote for " + (n.title || n.book_id));
        button.addEventListener("click", function () {
          vote(n.book_id, button);
        });
        li.appendChild(button);
      }
      list.appendChild(li);
    });
    renderStandings();
    renderBallot();
  }

  function winnerId(winner) {
    return typeof winner === "object" && winner ? winner.book_id || winner.title : winner;
  }

  function titleOf(bookId) {
    return state.titles[bookId] || String(bookId);
  }

  function renderStandings() {
    var list = $("standings");
    clear(list);
    $("standings-hidden").hidden = !state.resultsHidden;
    if (state.resultsHidden || !state.standings) return;
    var standings = state.standings.slice().sort(function (a, b) {
      return (b.votes || 0) - (a.votes || 0);
    });
    if (!standings.length) {
      list.appendChild(el("li", "muted", "No votes yet."));
      return;
    }
    var max = standings.reduce(function (m, s) {
      return Math.max(m, Number(s.votes) || 0);
    }, 0);
    var winner = state.round && state.round.winner ? winnerId(state.round.winner) : null;
    standings.forEach(function (s) {
      if (s.title) state.titles[s.book_id] = s.title;
      var votes = Number(s.votes) || 0;
      var li = el("li", "standing");
      li.dataset.bookId = s.book_id;
      if (winner && winner === s.book_id) li.classList.add("winner");
      var head = el("div", "standing-head");
      head.appendChild(el("span", "standing-title", titleOf(s.book_id)));
      var count = el("span", "standing-votes", votes + (votes === 1 ? " vote" : " votes"));
      count.dataset.votes = String(votes);
      head.appendChild(count);
      li.appendChild(head);
      var bar = el("div", "bar");
      bar.setAttribute("aria-hidden", "true");
      var fill = el("div", "bar-fill");
      // CSSOM, not a style attribute: allowed by the page's style-src 'self'.
      fill.style.width = (max ? Math.round((votes / max) * 100) : 0) + "%";
      bar.appendChild(fill);
      li.appendChild(bar);
      list.appendChild(li);
    });
  }

  function renderBallot() {
    var section = $("ballot-section");
    section.hidden = !state.session || !state.round;
    var list = $("ballot");
    clear(list);
    if (!state.session) return;
    if (!state.ballot.length) {
      list.appendChild(el("li", "muted", "You have not voted yet."));
      return;
    }
    state.ballot.forEach(function (bookId) {
      var li = el("li", null, titleOf(bookId));
      li.dataset.bookId = bookId;
      list.appendChild(li);
    });
  }

  function vote(bookId, button) {
    if (!state.session) {
      say("vote-message", "Sign in to vote.", "error");
      return Promise.resolve();
    }
    if (button) button.disabled = true;
    say("vote-message", "Submitting your vote…");
    state.votedAt = Date.now();
    return api("POST", "/vote", { book_id: String(bookId), user_id: state.session.userId })
      .then(function (result) {
        var votes = result.data && result.data.votes;
        say(
          "vote-message",
          "Vote for " + titleOf(bookId) + " submitted" + (votes !== undefined ? " (" + votes + " votes)." : "."),
          "ok"
        );
        return loadRound(result.consistencyToken);
      })
      .catch(function (error) {
        say("vote-message", "Your vote was not counted: " + error.message, "error");
      })
      .then(function () {
        if (button) button.disabled = false;
      });
  }

  // --- Discussions ---------------------------------------------------------------------------

  function loadDiscussions(consistencyToken) {
    return api("GET", "/discussions", undefined, consistencyToken)
      .then(function (result) {
        var threads = (result.data && result.data.discussions) || [];
        threads.forEach(mergeThread);
        renderDiscussions();
      })
      .catch(function (error) {
        say("discussion-message", "Could not load the discussions: " + error.message, "error");
      });
  }

  // Adds a thread, or the replies of a known thread that are new; never removes what live
  // updates brought in.
  function mergeThread(thread, newest) {
    if (!thread || !thread.thread_id) return;
    learnAuthor(thread.author_id, thread.author);
    var known = state.threadIndex[thread.thread_id];
    if (!known) {
      known = {
        thread_id: thread.thread_id,
        title: thread.title,
        author: thread.author,
        created_at: thread.created_at,
        replies: [],
      };
      state.threadIndex[thread.thread_id] = known;
      // The discussions come newest first; a thread started live is the newest.
      if (newest) state.threads.unshift(known);
      else state.threads.push(known);
    } else {
      known.title = thread.title || known.title;
      known.author = thread.author || known.author;
      known.created_at = thread.created_at || known.created_at;
    }
    (thread.replies || []).forEach(function (reply) {
      learnAuthor(reply.author_id, reply.author);
      var seen = reply.reply_id && state.replyIds[reply.reply_id];
      if (seen) {
        // A reply that came live before its author's name was known.
        if (reply.author) seen.author = reply.author;
      } else {
        addReply(known, reply, false);
      }
    });
  }

  function learnAuthor(id, name) {
    if (id && name) state.authors[id] = String(name);
  }

  function addReply(thread, reply, fresh) {
    if (!reply) return false;
    var id = reply.reply_id;
    if (id && state.replyIds[id]) return false;
    var entry = {
      reply_id: id,
      author_id: reply.author_id,
      author: reply.author || authorName(reply.author_id),
      content: reply.content,
      created_at: reply.created_at,
      fresh: !!fresh,
    };
    if (id) state.replyIds[id] = entry;
    thread.replies.push(entry);
    return true;
  }

  // A name for a user id, or null when the page has not seen it yet.
  function authorName(authorId) {
    if (!authorId) return null;
    if (state.session && state.session.userId === authorId) return state.session.username;
    return state.authors[authorId] || null;
  }

  function renderDiscussions() {
    var container = $("discussions");
    // Redrawing must not lose a reply being typed.
    var drafts = {};
    Array.prototype.forEach.call(container.querySelectorAll("textarea"), function (t) {
      if (t.value) drafts[t.id] = t.value;
    });
    var focused = document.activeElement && container.contains(document.activeElement) ? document.activeElement.id : null;
    clear(container);
    $("discussions-empty").hidden = state.threads.length > 0;
    $("thread-form").hidden = !state.session;
    state.threads.forEach(function (thread) {
      container.appendChild(renderThread(thread));
    });
    Object.keys(drafts).forEach(function (id) {
      var t = document.getElementById(id);
      if (t) t.value = drafts[id];
    });
    if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
  }

  function renderThread(thread) {
    var article = el("article", "thread");
    article.dataset.threadId = thread.thread_id;
    var headingId = "thread-" + thread.thread_id;
    var heading = el("h3", null, thread.title || "Untitled");
    heading.id = headingId;
    article.setAttribute("aria-labelledby", headingId);
    article.appendChild(heading);
    var meta = el("p", "meta", "by " + (thread.author || "a member") + " · ");
    meta.appendChild(timeEl(thread.created_at));
    article.appendChild(meta);

    var replies = el("ul", "replies");
    replies.setAttribute("aria-label", "Replies to " + (thread.title || "this discussion"));
    replies.setAttribute("aria-live", "polite");
    thread.replies.forEach(function (reply) {
      replies.appendChild(renderReply(reply));
    });
    article.appendChild(replies);
    var count = el("p", "meta reply-count", replyCountText(thread.replies.length));
    article.appendChild(count);

    if (state.session) {
      var form = el("form", "reply-form stack");
      var field = el("div", "field");
      var label = el("label", null, "Reply to " + (thread.title || "this discussion"));
      var inputId = "reply-" + thread.thread_id;
      label.htmlFor = inputId;
      var textarea = el("textarea");
      textarea.id = inputId;
      textarea.name = "content";
      textarea.rows = 2;
      textarea.required = true;
      field.appendChild(label);
      field.appendChild(textarea);
      form.appendChild(field);
      var submit = el("button", null, "Post reply");
      submit.type = "submit";
      form.appendChild(submit);
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        postReply(thread.thread_id, textarea, submit);
      });
      article.appendChild(form);
    }
    return article;
  }

  function replyCountText(n) {
    return n === 1 ? "1 reply" : n + " replies";
  }

  function renderReply(reply) {
    var li = el("li", reply.fresh ? "reply fresh" : "reply");
    if (reply.reply_id) li.dataset.replyId = reply.reply_id;
    var meta = el("p", "meta", (reply.author || "a member") + " · ");
    meta.appendChild(timeEl(reply.created_at));
    li.appendChild(meta);
    if (reply.deleted) li.appendChild(el("p", "reply-content muted", reply.removed ? "(removed by a moderator)" : "(deleted)"));
    else li.appendChild(el("p", "reply-content", reply.content));
    return li;
  }

  // Redraws one reply in place (edited or deleted).
  function redrawReply(reply) {
    var old = document.querySelector('li.reply[data-reply-id="' + cssEscape(reply.reply_id) + '"]');
    if (old) old.parentNode.replaceChild(renderReply(reply), old);
  }

  // Shows a reply that arrived live in its thread without redrawing the others (so a reply
  // being typed elsewhere keeps its text and focus).
  function showReply(thread, reply) {
    var article = document.querySelector('article.thread[data-thread-id="' + cssEscape(thread.thread_id) + '"]');
    if (!article) {
      renderDiscussions();
      return;
    }
    article.querySelector(".replies").appendChild(renderReply(reply));
    article.querySelector(".reply-count").textContent = replyCountText(thread.replies.length);
  }

  function cssEscape(value) {
    return window.CSS && CSS.escape ? CSS.escape(String(value)) : String(value).replace(/[^A-Za-z0-9_-]/g, "");
  }

  function postReply(threadId, textarea, button) {
    var content = textarea.value.trim();
    if (!content || !state.session) return;
    button.disabled = true;
    api("POST", "/discussions/" + encodeURIComponent(threadId) + "/reply", {
      author: state.session.username,
      content: content,
    })
      .then(function (result) {
        textarea.value = "";
        say("discussion-message", "Reply posted.", "ok");
        // The live update normally shows it first; this covers a socket that is down.
        return loadDiscussions(result.consistencyToken);
      })
      .catch(function (error) {
        say("discussion-message", "Your reply was not posted: " + error.message, "error");
      })
      .then(function () {
        button.disabled = false;
      });
  }

  function startThread(event) {
    event.preventDefault();
    if (!state.session) return;
    var title = $("thread-title").value.trim();
    var content = $("thread-content").value.trim();
    if (!title || !content) return;
    api("POST", "/discussion", { title: title, author: state.session.username, content: content })
      .then(function (result) {
        $("thread-title").value = "";
        $("thread-content").value = "";
        say("discussion-message", "Discussion started.", "ok");
        return loadDiscussions(result.consistencyToken);
      })
      .catch(function (error) {
        say("discussion-message", "The discussion was not started: " + error.message, "error");
      });
  }

  // --- Live updates --------------------------------------------------------------------------

  function setLive(liveState, text) {
    document.body.dataset.liveState = liveState;
    $("live-status").textContent = text;
  }

  function connect() {
    clearTimeout(state.reconnectTimer);
    state.reconnectTimer = null;
    if (state.socket) {
      var old = state.socket;
      state.socket = null;
      old.onclose = null;
      try {
        old.close();
      } catch (e) {
        /* already closed */
      }
    }
    var params = new URLSearchParams();
    if (state.position !== null) params.set("after", String(state.position));
    if (state.session) params.set("access_token", state.session.token);
    var query = params.toString();
    var url =
      (location.protocol === "https:" ? "wss://" : "ws://") +
      location.host +
      "/clubs/" +
      encodeURIComponent(clubId) +
      "/live" +
      (query ? "?" + query : "");
    var socket;
    try {
      socket = new WebSocket(url);
    } catch (e) {
      scheduleReconnect();
      return;
    }
    state.socket = socket;
    setLive("connecting", state.attempt ? "Reconnecting…" : "Connecting…");
    socket.onopen = function () {
      state.openedAt = Date.now();
      setLive("live", "Live");
    };
    socket.onmessage = function (event) {
      var message;
      try {
        message = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      if (Date.now() - state.openedAt > STABLE_MS) state.attempt = 0;
      handle(message);
    };
    socket.onerror = function () {
      /* onclose follows */
    };
    socket.onclose = function () {
      if (state.socket !== socket) return;
      state.socket = null;
      if (state.openedAt && Date.now() - state.openedAt > STABLE_MS) state.attempt = 0;
      state.openedAt = 0;
      scheduleReconnect();
    };
  }

  function scheduleReconnect() {
    if (state.reconnectTimer) return;
    if (state.revoked) {
      setLive("offline", "This club's live updates are for its members.");
      return;
    }
    var base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * Math.pow(2, state.attempt));
    var delay = Math.round(base / 2 + Math.random() * (base / 2));
    state.attempt = Math.min(state.attempt + 1, 16);
    setLive("offline", "Offline; reconnecting in " + Math.ceil(delay / 1000) + " s…");
    state.reconnectTimer = setTimeout(connect, delay);
  }

  function reconnectNow() {
    state.attempt = 0;
    state.revoked = false;
    connect();
  }

  function handle(message) {
    if (!message || typeof message !== "object") return;
    if (message.type === "resync") {
      // The hub could not keep up with us: pick up again from the position it names.
      if (message.position !== undefined && message.position !== null) {
        var n = Number(message.position);
        if (Number.isSafeInteger(n) && n >= 0) {
          state.position = n;
          notePosition(n);
        }
      }
      reconnectNow();
      return;
    }
    var data = message.data || {};
    switch (message.type) {
      case "ballot_cast":
        onBallot(data, message.position);
        break;
      case "reply_posted":
        onReply(data, message.position);
        break;
      case "reply_edited":
      case "reply_deleted":
        onReplyChanged(message.type, data);
        break;
      case "thread_started":
        onThread(data, message.position);
        break;
      case "book_nominated":
        // A new nomination (its title, who nominated it) comes from the round itself.
        onStandings(data);
        loadRound(message.position);
        break;
      case "round_opened":
      case "round_closed":
        loadRound(message.position);
        break;
      case "access_revoked":
        state.revoked = true;
        break;
      default:
        break;
    }
    if (message.position !== undefined) notePosition(message.position);
  }

  function onBallot(data, position) {
    if (!onStandings(data)) loadRound(position);
    // The hub never says who voted: the member's own ballot comes from the round.
    if (state.session && state.votedAt && Date.now() - state.votedAt < 60000) loadRound(position);
  }

  // Applies the standings of a live event; false when it carried none.
  function onStandings(data) {
    if (data.results_hidden) {
      state.standingsSeq += 1;
      state.resultsHidden = true;
      state.standings = null;
      renderStandings();
      return true;
    }
    var counts = countsOf(data.standings);
    if (!counts) return false;
    state.standingsSeq += 1;
    state.resultsHidden = false;
    state.standings = counts.map(function (c) {
      if (c.title) state.titles[c.book_id] = c.title;
      return { book_id: c.book_id, title: c.title || state.titles[c.book_id], votes: c.votes };
    });
    renderStandings();
    return true;
  }

  // The first-choice counts of a live standings value: a list, a plurality count
  // `{method, counts}`, or a ranked-choice count `{method, rounds: [{counts}]}` (its first round,
  // as the round's own standings show first choices).
  function countsOf(standings) {
    if (!standings) return null;
    if (Array.isArray(standings)) return standings;
    if (Array.isArray(standings.counts)) return standings.counts;
    if (Array.isArray(standings.rounds) && standings.rounds.length && Array.isArray(standings.rounds[0].counts)) {
      return standings.rounds[0].counts;
    }
    return null;
  }

  function onReply(data, position) {
    var thread = state.threadIndex[data.thread_id];
    if (!thread) {
      loadDiscussions(position);
      return;
    }
    if (addReply(thread, data, true)) {
      var reply = thread.replies[thread.replies.length - 1];
      showReply(thread, reply);
      // Live events name authors by id: learn an unknown name from the discussions.
      if (!reply.author) {
        loadDiscussions(position).then(function () {
          redrawReply(reply);
        });
      }
    }
  }

  function onReplyChanged(type, data) {
    var reply = data.reply_id && state.replyIds[data.reply_id];
    if (!reply || typeof reply !== "object") return;
    if (type === "reply_edited") {
      if (typeof data.content === "string") reply.content = data.content;
    } else {
      reply.deleted = true;
      reply.removed = !!data.removed;
    }
    redrawReply(reply);
  }

  function onThread(data, position) {
    if (data.thread_id && data.title) {
      mergeThread({
        thread_id: data.thread_id,
        title: data.title,
        author_id: data.author_id,
        author: data.author || authorName(data.author_id),
        created_at: data.created_at,
        replies: [],
      }, true);
      renderDiscussions();
      if (!state.threadIndex[data.thread_id].author) loadDiscussions(position);
    } else {
      loadDiscussions(position);
    }
  }

  // --- Signing in and out --------------------------------------------------------------------

  function signIn(event) {
    event.preventDefault();
    var username = $("signin-username").value.trim();
    var password = $("signin-password").value;
    if (!username || !password) return;
    say("account-message", "Signing in…");
    api("POST", "/auth/token", { username: username, password: password })
      .then(function (result) {
        var body = result.data || {};
        if (!body.access_token) throw new Error("no token in the answer");
        saveSession({ token: body.access_token, userId: body.user_id, username: username });
        return api("GET", "/users/me").then(function (me) {
          var user = me.data || {};
          saveSession({
            token: body.access_token,
            userId: user.id || body.user_id,
            username: user.username || username,
          });
        });
      })
      .then(function () {
        $("signin-password").value = "";
        say("account-message", "");
        signedIn();
      })
      .catch(function (error) {
        saveSession(null);
        say("account-message", "Sign-in failed: " + error.message, "error");
      });
  }

  function signedIn() {
    renderAccount();
    renderRound();
    renderDiscussions();
    // The ballot is personal, and the hub may show a member more (private clubs).
    loadRound();
    reconnectNow();
  }

  function signedOut(message) {
    saveSession(null);
    state.ballot = [];
    renderAccount();
    renderRound();
    renderDiscussions();
    say("account-message", message || "Signed out.", message ? "error" : "ok");
    reconnectNow();
  }

  function renderAccount() {
    var session = state.session;
    $("signin-form").hidden = !!session;
    $("signed-in").hidden = !session;
    $("signed-in-name").textContent = session ? session.username : "";
  }

  // --- Start ---------------------------------------------------------------------------------

  function start() {
    $("signin-form").addEventListener("submit", signIn);
    $("signout-button").addEventListener("click", function () {
      signedOut();
    });
    $("writein-form").addEventListener("submit", function (event) {
      event.preventDefault();
      var input = $("writein-book");
      var bookId = input.value.trim();
      if (!bookId) return;
      vote(bookId, event.submitter || null).then(function () {
        input.value = "";
      });
    });
    $("thread-form").addEventListener("submit", startThread);
    window.addEventListener("online", reconnectNow);
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "visible" && !state.socket) reconnectNow();
    });
    if (state.position !== null) document.body.dataset.livePosition = String(state.position);
    renderAccount();
    // Listen first, then read: whatever happens in between arrives on the socket and is applied
    // idempotently (standings replace, replies by id).
    connect();
    Promise.all([loadRound(), loadDiscussions()]).then(function () {
      document.body.dataset.loaded = "true";
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
