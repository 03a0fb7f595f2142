// Draws a waveform from audiowaveform JSON (version 2: interleaved min/max pairs), the format
// peaks.js and waveform-data.js read, and turns clicks and arrow keys into seeks.

export class Waveform {
  constructor(canvas, peaks, { onSeek, duration }) {
    this.canvas = canvas;
    this.peaks = peaks;
    this.duration = duration;
    this.position = 0;
    this.onSeek = onSeek;
    this.scale = peaks.bits === 8 ? 128 : 32768;
    canvas.tabIndex = 0;
    canvas.setAttribute("role", "slider");
    canvas.setAttribute("aria-valuemin", "0");
    canvas.setAttribute("aria-valuemax", String(Math.round(duration)));
    canvas.addEventListener("click", (event) => {
      const box = canvas.getBoundingClientRect();
      this.seek(((event.clientX - box.left) / box.width) * this.duration);
    });
    canvas.addEventListener("keydown", (event) => {
      const step = { ArrowLeft: -5, ArrowRight: 5, PageDown: -30, PageUp: 30 }[event.key];
      if (step !== undefined) this.seek(this.position + step);
      else if (event.key === "Home") this.seek(0);
      else if (event.key === "End") this.seek(this.duration);
      else return;
      event.preventDefault();
    });
    new ResizeObserver(() => this.draw()).observe(canvas);
  }

  seek(seconds) {
    this.onSeek(Math.max(0, Math.min(this.duration, seconds)));
  }

  setPosition(seconds) {
    this.position = seconds;
    this.canvas.setAttribute("aria-valuenow", String(Math.round(seconds)));
    this.canvas.setAttribute("aria-valuetext", `${clock(seconds)} of ${clock(this.duration)}`);
    this.draw();
  }

  // One column per device pixel: the min and max of the peaks that fall in it.
  draw() {
    const { canvas, peaks } = this;
    const ratio = window.devicePixelRatio || 1;
    const width = Math.max(1, Math.round(canvas.clientWidth * ratio));
    const height = Math.max(1, Math.round(canvas.clientHeight * ratio));
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    const context = canvas.getContext("2d");
    const style = getComputedStyle(canvas);
    const played = style.getPropertyValue("--played").trim() || "#c2410c";
    const unplayed = style.getPropertyValue("--unplayed").trim() || "#57534e";
    context.clearRect(0, 0, width, height);
    const middle = height / 2;
    const length = peaks.length;
    const playedUpTo = this.duration ? (this.position / this.duration) * width : 0;
    for (let x = 0; x < width; x++) {
      const from = Math.floor((x / width) * length);
      const to = Math.max(from + 1, Math.floor(((x + 1) / width) * length));
      let low = 0;
      let high = 0;
      for (let i = from; i < to && i < length; i++) {
        low = Math.min(low, peaks.data[2 * i]);
        high = Math.max(high, peaks.data[2 * i + 1]);
      }
      const top = middle - (high / this.scale) * middle;
      const bottom = middle - (low / this.scale) * middle;
      context.fillStyle = x < playedUpTo ? played : unplayed;
      context.fillRect(x, top, 1, Math.max(1, bottom - top));
    }
  }
}

export function clock(seconds) {
  const whole = Math.max(0, Math.round(seconds || 0));
  const minutes = Math.floor(whole / 60);
  return `${minutes}:${String(whole % 60).padStart(2, "0")}`;
}
