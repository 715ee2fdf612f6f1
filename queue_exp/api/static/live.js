// queue_exp live view: draws what /live/stream sends (server-sent events), about
// once a second per broker. Hand-written, no libraries, nothing fetched from
// elsewhere. Read-only: the page never changes a broker.
//
// Every name shown comes from the brokers (anyone can create a topic called
// "<img onerror=...>"), so text goes in with textContent, never innerHTML.
"use strict";

(function () {
  const params = new URLSearchParams(window.location.search);
  const kafkaSection = document.getElementById("kafka");
  const rabbitSection = document.getElementById("rabbitmq");
  const connection = document.getElementById("connection");
  const picker = document.getElementById("namespace");
  const pageProblem = document.getElementById("page-problem");
  const focus = document.getElementById("focus");
  const SVG = "http://www.w3.org/2000/svg";
  // Okabe-Ito colours with black text on each (the name is always written too)
  const MEMBER_COLOURS = ["#56b4e9", "#e69f00", "#009e73", "#f0e442", "#cc79a7", "#d55e00"];
  const memberColour = new Map();   // member name -> colour, kept for the page's life
  const lastOwner = new Map();      // topic/group/partition -> owner, to flash a change
  let lastMessageAt = 0;
  let streamDown = false;
  let lastView = null;
  let pickerFilled = "";

  // ------------------------------------------------------------ DOM helpers

  function h(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child !== null && child !== undefined && child !== false) node.append(child);
    }
    return node;
  }

  function s(tag, props) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === "text") node.textContent = value;
      else node.setAttribute(key, String(value));
    }
    return node;
  }

  // The child of `parent` with data-key `key`, made by `make()` the first time; kept
  // across updates so that bars can grow smoothly instead of being redrawn.
  function keyed(parent, key, make) {
    for (const child of parent.children) {
      if (child.dataset.key === key) {
        child.dataset.seen = "1";
        return child;
      }
    }
    const node = make();
    node.dataset.key = key;
    node.dataset.seen = "1";
    parent.append(node);
    return node;
  }

  // Drop the keyed children this update did not touch, and put the rest in `order`.
  function prune(parent, order) {
    for (const child of [...parent.children]) {
      if (child.dataset.key === undefined) continue;
      if (child.dataset.seen !== "1") child.remove();
      else delete child.dataset.seen;
    }
    order.forEach((node, i) => {
      if (parent.children[i] !== node) parent.insertBefore(node, parent.children[i] || null);
    });
  }

  // Nothing to draw while a notice (a problem, an empty namespace) says why: empty the body.
  function cleared(content, view) {
    if (!(view.problem || view.empty)) return false;
    content.replaceChildren();
    return true;
  }

  // The section's legend, written once.
  function legend(content, ...items) {
    const box = slot(content, "legend");
    if (!box.childElementCount) box.append(...items);
  }

  // The child of `parent` with these classes ("column queues"), made the first time.
  function slot(parent, cls, tag) {
    let node = parent.querySelector(":scope > ." + cls.split(" ").join("."));
    if (!node) {
      node = h(tag || "div", { class: cls });
      parent.append(node);
    }
    return node;
  }

  const number = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));
  const rate = (r) => (r === null || r === undefined ? "–"
    : r < 10 ? r.toFixed(1) : String(Math.round(r)));
  const percent = (part, whole) => (whole > 0 ? Math.max(0, Math.min(100, (100 * part) / whole)) : 0);

  function colourOf(name) {
    if (!memberColour.has(name)) {
      memberColour.set(name, MEMBER_COLOURS[memberColour.size % MEMBER_COLOURS.length]);
    }
    return memberColour.get(name);
  }

  function chip(name, changed) {
    if (!name) return h("span", { class: "chip idle", text: "no owner" });
    const node = h("span", { class: changed ? "chip changed" : "chip", text: name });
    node.style.background = colourOf(name);
    return node;
  }

  function link(text, changes) {
    const next = new URLSearchParams(params);
    for (const [key, value] of Object.entries(changes)) {
      if (value === null) next.delete(key); else next.set(key, value);
    }
    return h("a", { href: "?" + next.toString(), text: text });
  }

  // ------------------------------------------------------------- notices

  function notices(section, view, brokerName) {
    const area = section.querySelector(".notice-area");
    area.replaceChildren();
    section.classList.toggle("stale", view.status !== "up");
    if (view.status === "starting") {
      area.append(h("div", { class: "notice", text: `Looking at ${brokerName}…` }));
    } else if (view.status === "down" || view.status === "error") {
      const where = view.address || "its configured address";
      const box = h("div", { class: "notice down", "data-outage": view.broker || brokerName },
        h("strong", { text: `${brokerName} is not reachable at ${where}` }));
      if (view.status === "down") {
        box.append(h("div", {}, "Start the brokers in a terminal with ", h("code", { text: "make brokers" }),
          " (or ", h("code", { text: "python -m queue_exp brokers up" }), "). ",
          "This page keeps looking every second and recovers by itself."));
      }
      if (view.error) box.append(h("div", { class: "note", text: view.error }));
      area.append(box);
    }
    if (view.status !== "up") return false;
    if (view.problem) {
      const box = h("div", { class: "notice problem", "data-problem": "1", text: view.problem });
      const kind = brokerName === "Kafka" ? "topic" : "queue";
      const known = h("div", { class: "known" });
      for (const name of view.known || []) known.append(link(name, { [kind]: name }));
      known.append(link(`show every ${kind}`, { [kind]: null }));
      box.append(known);
      area.append(box);
    } else if (view.empty) {
      area.append(h("div", { class: "notice", "data-empty": "1", text: view.empty }));
    }
    return true;
  }

  function where(section, text) {
    section.querySelector("h2 .where").textContent = text;
  }

  // ---------------------------------------------------------------- Kafka

  function drawKafka(view) {
    const up = notices(kafkaSection, view, "Kafka");
    const content = kafkaSection.querySelector(".content");
    if (!up) {
      where(kafkaSection, view.address ? `at ${view.address}` : "");
      return;
    }
    const brokers = view.brokers === 1 ? "1 broker" : `${view.brokers} brokers`;
    where(kafkaSection, `${view.address} · ${brokers}`);
    if (cleared(content, view)) return;
    legend(content,
      h("span", {}, h("span", { class: "swatch stored" }), "records"),
      h("span", {}, h("span", { class: "swatch deleted" }), "deleted by retention"),
      h("span", {}, h("span", { class: "swatch committed" }), "committed"),
      h("span", {}, h("span", { class: "swatch lag" }), "lag: not yet read"));
    const list = slot(content, "topics");
    const cards = view.topics.map((topic) => drawTopic(list, topic, view.brokers > 1));
    prune(list, cards);
    const more = slot(content, "more note", "p");
    more.textContent = view.hidden ? `${view.hidden} more topics not shown: pick a namespace above.` : "";
    drawReceived(content, view.received, (m) => `P${m.partition}@${m.offset}`);
  }

  function drawTopic(list, topic, replicated) {
    const card = keyed(list, topic.name, () => h("article", { class: "topic" },
      h("h3", {}, h("span", { class: "tname" }), h("span", { class: "meta" })),
      h("div", { class: "partitions" }), h("div", { class: "groups" })));
    card.dataset.topicCard = topic.name;
    const title = card.querySelector(".tname");
    title.textContent = topic.label;
    title.title = topic.name;
    const count = topic.partitions.length;
    card.querySelector(".meta").textContent =
      `${count} partition${count === 1 ? "" : "s"} · ${number(topic.records)} records`;
    const widest = Math.max(1, ...topic.partitions.map((p) => p.end || 0));
    const rows = card.querySelector(".partitions");
    const drawn = topic.partitions.map((p) => drawPartition(rows, topic, p, widest, replicated));
    prune(rows, drawn);
    drawGroups(card.querySelector(".groups"), topic);
    return card;
  }

  function drawPartition(rows, topic, p, widest, replicated) {
    const row = keyed(rows, String(p.partition), () => h("div", { class: "partition" },
      h("span", { class: "pname" }),
      h("div", { class: "log" }, h("div", { class: "deleted" }), h("div", { class: "stored" })),
      h("span", { class: "ends" }),
      h("div", { class: "owners" })));
    row.dataset.topic = topic.name;
    row.dataset.partition = p.partition;
    row.dataset.start = p.start === null ? "" : p.start;
    row.dataset.end = p.end === null ? "" : p.end;
    row.querySelector(".pname").textContent = `P${p.partition}`;
    const log = row.querySelector(".log");
    const start = p.start || 0;
    const end = p.end || 0;
    const deleted = log.querySelector(".deleted");
    deleted.style.width = percent(start, widest) + "%";
    const stored = log.querySelector(".stored");
    stored.style.left = percent(start, widest) + "%";
    stored.style.width = percent(end - start, widest) + "%";
    log.title = `offsets ${number(start)} to ${number(end - 1)} stored; the next record gets ${number(end)}`;
    const ends = row.querySelector(".ends");
    ends.replaceChildren(start > 0 ? `${number(start)}…` : "", "end ", h("b", { text: number(p.end) }));

    // each group: its committed offset as a mark on the log, its lag as a stripe
    const marks = [];
    const owners = row.querySelector(".owners");
    owners.replaceChildren();
    for (const group of topic.groups) {
      const at = group.partitions.find((x) => x.partition === p.partition) || {};
      const key = `${topic.name}\u0000${group.name}\u0000${p.partition}`;
      if (at.committed !== null && at.committed !== undefined) {
        const lag = keyed(log, "lag:" + group.name, () => h("div", { class: "lag" }));
        lag.style.left = percent(at.committed, widest) + "%";
        lag.style.width = percent(end - at.committed, widest) + "%";
        const mark = keyed(log, "mark:" + group.name, () => h("div", { class: "committed" }));
        mark.style.left = percent(at.committed, widest) + "%";
        mark.title = `${group.label} committed ${number(at.committed)}`;
        marks.push(lag, mark);
      }
      const changed = lastOwner.has(key) && lastOwner.get(key) !== (at.owner || null);
      lastOwner.set(key, at.owner || null);
      const behind = at.lag ? " behind" : "";
      const lagText = at.lag === null || at.lag === undefined ? "no commit yet" : `lag ${number(at.lag)}`;
      owners.append(h("span", { class: "owner", "data-group": group.name, "data-lag": at.lag ?? "",
        "data-owner": at.owner || "" },
        topic.groups.length > 1 ? h("span", { class: "gname", text: group.label + " " }) : null,
        // a group without members (it read and left) owns nothing: no chip, just its lag
        group.members.length ? chip(at.owner, changed) : null, " ",
        h("span", { class: "lagnum" + behind, text: lagText })));
    }
    prune(log, [log.querySelector(".deleted"), log.querySelector(".stored"), ...marks]);
    owners.hidden = topic.groups.length === 0;

    let replicas = row.querySelector(".replicas");
    if (replicated) {
      if (!replicas) replicas = row.appendChild(h("div", { class: "replicas" }));
      const isr = p.isr.join(", ");
      const missing = p.replicas.filter((r) => !p.isr.includes(r));
      // a replica out of sync stands out (bold, vermillion): on a projector it is the news
      const out = missing.length
        ? [" · ", h("span", { class: "out" }, `NOT in sync: ${missing.join(", ")}`)] : [];
      replicas.replaceChildren(`leader: broker ${p.leader} · in sync: ${isr}`, ...out);
    } else if (replicas) {
      replicas.remove();
    }
    return row;
  }

  function drawGroups(box, topic) {
    box.replaceChildren();
    for (const group of topic.groups) {
      const line = h("div", { class: "group", "data-group": group.name, "data-lag": group.lag },
        h("span", { class: "gtitle", text: `group ${group.label}`, title: group.name }),
        h("span", { class: "gstate",
          text: `${group.state || "?"} · ${group.members.length} member${group.members.length === 1 ? "" : "s"} · lag ${number(group.lag)}` }));
      for (const member of group.members) {
        const parts = member.partitions.length
          ? member.partitions.map((x) => "P" + x).join(" ") : "idle";
        line.append(h("span", { class: "member", title: member.id }, chip(member.label, false), " → " + parts));
      }
      box.append(line);
    }
  }

  // What the API's own background consumer received last, newest first.
  function drawReceived(content, messages, where) {
    const box = slot(content, "received");
    box.hidden = !messages || !messages.length;
    if (box.hidden) return;
    box.replaceChildren(h("span", { class: "rtitle", text: "the API's consumer got, newest first:" }),
      ...messages.map((m) => h("span", { class: "rmsg" },
        h("q", { text: String(m.message ?? "?").slice(0, 40) }),
        where(m) ? h("small", { text: " " + where(m) }) : null)));
  }

  // ------------------------------------------------------------- RabbitMQ

  function drawRabbit(view) {
    const up = notices(rabbitSection, view, "RabbitMQ");
    const content = rabbitSection.querySelector(".content");
    where(rabbitSection, view.address ? `${up ? "" : "at "}${view.address}` : "");
    if (!up) return;
    if (cleared(content, view)) return;
    legend(content,
      h("span", {}, h("span", { class: "swatch ready" }), "ready"),
      h("span", {}, h("span", { class: "swatch unacked" }), "unacked: delivered, not acked"),
      h("span", {}, "rates in messages/s"));
    const relay = new Set(view.bindings.filter((b) => b.destination_type === "exchange")
      .map((b) => b.destination));
    const graph = slot(content, "graph");
    graph.classList.toggle("three", relay.size > 0);
    const svg = graph.querySelector(":scope > svg") || graph.appendChild(s("svg", { class: "edges" }));
    const sources = slot(graph, "column exchanges");
    const relays = slot(graph, "column relays");
    relays.hidden = relay.size === 0;
    const queues = slot(graph, "column queues");
    graph.append(queues);  // keep the column order: sources, relays, queues
    if (relay.size === 0) graph.insertBefore(relays, queues);

    const exchangeNodes = { sources: [], relays: [] };
    for (const x of view.exchanges) {
      const column = relay.has(x.name) ? relays : sources;
      const node = keyed(column, "x:" + x.name, () => h("div", { class: "exchange" },
        h("div", { class: "xname" }), h("div", { class: "xtype" }), h("div", { class: "xrate" })));
      node.dataset.exchange = x.name;
      node.querySelector(".xname").textContent = x.label;
      node.title = x.name === "" ? "the default exchange: routes to the queue named by the routing key" : x.name;
      node.querySelector(".xtype").textContent = x.name === "" ? "default · by queue name" : x.type;
      node.querySelector(".xrate").textContent = x.rate_in === null ? "" : `in ${rate(x.rate_in)}/s`;
      (column === relays ? exchangeNodes.relays : exchangeNodes.sources).push(node);
    }
    prune(sources, exchangeNodes.sources);
    prune(relays, exchangeNodes.relays);
    const widest = Math.max(1, ...view.queues.map((q) => (q.ready || 0) + (q.unacked || 0)));
    prune(queues, view.queues.map((q) => drawQueue(queues, q, widest)));
    const more = slot(content, "more note", "p");
    more.textContent = view.hidden ? `${view.hidden} more queues not shown: pick a namespace above.` : "";
    drawReceived(content, view.received, (m) => (m.redelivered ? "redelivered" : ""));
    drawEdges(graph, svg, view.bindings);
  }

  function drawQueue(column, q, widest) {
    const node = keyed(column, "q:" + q.name, () => h("div", { class: "queue" },
      h("div", { class: "qhead" }, h("span", { class: "qname" }), h("span", { class: "badge" })),
      h("div", { class: "counts" }),
      h("div", { class: "depth" }, h("span", { class: "ready" }), h("span", { class: "unacked" })),
      h("div", { class: "clist" }), h("div", { class: "rates" }), h("div", { class: "where" })));
    node.dataset.queue = q.name;
    node.dataset.ready = q.ready ?? "";
    node.dataset.unacked = q.unacked ?? "";
    node.dataset.consumers = q.consumers ?? "";
    const name = node.querySelector(".qname");
    name.textContent = q.label;
    name.title = q.name;
    const badge = node.querySelector(".badge");
    badge.textContent = q.type + (q.durable === false ? " · transient" : "");
    badge.className = "badge " + q.type;
    const unackedClass = q.unacked ? "unacked some" : "unacked";
    node.querySelector(".counts").replaceChildren(
      h("span", { class: "ready" }, "ready ", h("b", { text: number(q.ready) })),
      h("span", { class: unackedClass }, "unacked ", h("b", { text: number(q.unacked) })),
      h("span", { class: "consumers" }, "consumers ", h("b", { text: number(q.consumers) })));
    const ready = q.ready || 0;
    const unacked = q.unacked || 0;
    const depth = node.querySelector(".depth");
    depth.querySelector(".ready").style.width = percent(ready, widest) + "%";
    const un = depth.querySelector(".unacked");
    un.style.left = percent(ready, widest) + "%";
    un.style.width = percent(unacked, widest) + "%";
    drawConsumers(node.querySelector(".clist"), q);
    const r = q.rates || {};
    node.querySelector(".rates").replaceChildren(
      "in ", h("b", { text: rate(r.publish) }), "/s · out ", h("b", { text: rate(r.deliver) }),
      "/s · ack ", h("b", { text: rate(r.ack) }), "/s",
      r.redeliver ? ` · redelivered ${rate(r.redeliver)}/s` : "");
    const whereText = q.leader ? `leader: ${q.leader}` + (q.members.length > 1 ? ` · ${q.members.length} members` : "") : "";
    node.querySelector(".where").textContent = whereText;
    return node;
  }

  // Who holds what: each consumer's unacked messages and its prefetch limit.
  function drawConsumers(list, q) {
    const consumers = q.consumer_list || [];
    list.replaceChildren(...consumers.map((c) => h("div", {
      class: "consumer", "data-consumer": c.tag, "data-unacked": c.unacked ?? "" },
      h("span", { class: "ctag", text: c.tag }), " · ",
      c.manual_ack === false
        ? "auto-ack"
        : h("span", { class: c.unacked ? "cun some" : "cun" }, "unacked ", h("b", { text: number(c.unacked) })),
      " · " + (c.prefetch ? `prefetch ${c.prefetch}` : "no prefetch limit"))));
    const more = q.consumers_hidden || 0;
    if (more > 0) list.append(h("div", { class: "note", text: `and ${more} more` }));
  }

  // Bindings as arrows from an exchange's right edge to a queue's (or exchange's) left
  // edge, drawn after the boxes are laid out; the binding key written on the arrow.
  function drawEdges(graph, svg, bindings) {
    const box = graph.getBoundingClientRect();
    svg.replaceChildren(defs());
    const find = (type, name) => graph.querySelector(
      type === "queue" ? `.queue[data-queue="${CSS.escape(name)}"]` : `.exchange[data-exchange="${CSS.escape(name)}"]`);
    const labels = [];
    for (const b of bindings) {
      const from = find("exchange", b.source);
      const to = find(b.destination_type, b.destination);
      if (!from || !to) continue;
      const a = from.getBoundingClientRect();
      const z = to.getBoundingClientRect();
      const x1 = a.right - box.left;
      const y1 = a.top + a.height / 2 - box.top;
      const x2 = z.left - box.left - 2;
      const y2 = z.top + Math.min(z.height / 2, 22) - box.top;
      const dx = Math.max(30, (x2 - x1) / 2);
      svg.append(s("path", {
        d: `M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}`,
        class: b.implicit ? "edge implicit" : "edge",
        "marker-end": "url(#arrow)",
      }));
      const text = bindingLabel(b);
      if (text && !b.implicit) labels.push({ x: x1 + 0.72 * (x2 - x1), y: y1 + 0.9 * (y2 - y1) - 5, text });
    }
    for (const l of labels) {
      svg.append(s("text", { x: l.x, y: l.y, "text-anchor": "middle", text: l.text }));
    }
  }

  function bindingLabel(b) {
    const args = Object.entries(b.arguments || {});
    if (args.length) return args.map(([k, v]) => `${k}=${v}`).join(" ");
    return b.key || "";
  }

  function defs() {
    const d = s("defs");
    const marker = s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5,
      markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
    marker.append(s("path", { d: "M0,0 L10,5 L0,10 z", fill: "#444" }));
    d.append(marker);
    return d;
  }

  // ------------------------------------------------------------ the page

  function fillPicker(view) {
    const names = [...new Set([view.namespace, ...(view.namespaces || [])])].filter(Boolean);
    const signature = JSON.stringify([view.namespace, names]);
    if (signature === pickerFilled) return;
    pickerFilled = signature;
    picker.replaceChildren(h("option", { value: "", text: "(every namespace)" }));
    for (const name of names) {
      const mine = name === view.own_namespace ? " (this API's)" : "";
      picker.append(h("option", { value: name, text: name + mine }));
    }
    picker.value = view.namespace || "";
  }

  function render(view) {
    lastView = view;
    document.body.classList.add("receiving");
    pageProblem.hidden = !view.problem;
    pageProblem.textContent = view.problem || "";
    fillPicker(view);
    document.title = `queue_exp live · ${view.namespace || "every namespace"}`;
    const shown = view.topic ? `topic ${view.topic}` : view.queue ? `queue ${view.queue}` : "";
    focus.hidden = !shown;
    if (shown) focus.replaceChildren(`only ${shown} · `, link("show everything", { topic: null, queue: null }));
    if (view.problem) {
      kafkaSection.hidden = rabbitSection.hidden = true;
      return;
    }
    kafkaSection.hidden = view.show === "rabbitmq";
    rabbitSection.hidden = view.show === "kafka";
    document.getElementById("brokers").classList.toggle("single", Boolean(view.show));
    if (!kafkaSection.hidden) drawKafka(view.kafka);
    if (!rabbitSection.hidden) drawRabbit(view.rabbitmq);
  }

  function tick() {
    if (!lastMessageAt || streamDown) return;
    const age = (performance.now() - lastMessageAt) / 1000;
    connection.classList.toggle("lost", age > 5);
    connection.textContent = age > 5
      ? `no update for ${Math.round(age)} s: is the API still running?`
      : `updated ${age.toFixed(1)} s ago`;
  }

  picker.addEventListener("change", () => {
    const next = new URLSearchParams(params);
    next.set("namespace", picker.value);
    next.delete("topic");
    next.delete("queue");
    window.location.search = next.toString();
  });
  window.addEventListener("resize", () => { if (lastView) render(lastView); });

  const stream = new EventSource("live/stream" + window.location.search);
  stream.onmessage = (event) => {
    lastMessageAt = performance.now();
    streamDown = false;
    render(JSON.parse(event.data));
    tick();
  };
  stream.onerror = () => {
    // the browser reconnects by itself (the server asks for a retry after 1 s)
    streamDown = true;
    connection.classList.add("lost");
    connection.textContent = "the API does not answer: reconnecting…";
    document.body.classList.remove("receiving");
  };
  setInterval(tick, 500);
})();
