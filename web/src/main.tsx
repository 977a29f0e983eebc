import { render } from 'preact';
import { App } from './app';
import { loadMe, loadSite } from './lib/session';
import './styles.css';

void loadMe();
void loadSite();
render(<App />, document.getElementById('app')!);
