import { useEffect, useRef, useState } from 'preact/hooks';

/** Now (ms), updated every `every` ms. */
export function useNow(every = 1000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const id = setInterval(() => setNow(Date.now()), every);
    return () => clearInterval(id);
  }, [every]);
  return now;
}

/** `load` now and every `every` ms (none: once) while mounted; its latest result or error. */
export function usePoll<T>(load: () => Promise<T>, deps: unknown[], every?: number) {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<unknown>(null);
  const latest = useRef(load);
  latest.current = load;
  useEffect(() => {
    let alive = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const run = async () => {
      try {
        const v = await latest.current();
        if (alive) {
          setData(v);
          setError(null);
        }
      } catch (e) {
        if (alive) setError(e);
      }
      if (alive && every) timer = setTimeout(run, every);
    };
    void run();
    return () => {
      alive = false;
      if (timer) clearTimeout(timer);
    };
  }, deps);
  const reload = async () => setData(await latest.current());
  return { data, error, reload, setData };
}
